"""The run folder: its config, its lock (one process at a time), and the report of the rounds
committed so far (`load_report`), which trains nothing."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from funcnn import distributed, io
from funcnn.lottery import report as report_lib
from funcnn.lottery.config import Config

__all__ = ["CheckpointWriteError", "RunFolderBusy", "load_report", "run_dir"]


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder's lock.

    `run` raises it at the start, before anything is read or trained: one process per run folder.

    Example:
        >>> import fcntl
        >>> import os
        >>> import tempfile
        >>> import jax.numpy as jnp
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import RunFolderBusy, Spec, run
        >>> data = (jnp.zeros((8, 4)), jnp.zeros(8, "int32"))
        >>> spec = Spec(nn.serial(nn.Dense(2)), optax.sgd(0.1), train=data, n_val=4, batch_size=2, iterations=10,
        ...             eval_every=10)
        >>> with tempfile.TemporaryDirectory() as out:
        ...     fd = os.open(os.path.join(out, "LOCK"), os.O_RDWR | os.O_CREAT)
        ...     fcntl.flock(fd, fcntl.LOCK_EX)  # as a running study holds it
        ...     try:
        ...         run(spec, out=out)
        ...     except RunFolderBusy as e:
        ...         print("busy:", e)
        ...     os.close(fd)
        busy: run folder ... is in use by another process; wait for it to end (or stop it) before starting ...
    """


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, no permission); what was committed is intact.

    `run` raises it for any OSError while writing, with the original errno and file name; re-run
    once there is room to resume from the last checkpoint.

    Example:
        >>> import errno
        >>> from funcnn.lottery import CheckpointWriteError
        >>> e = CheckpointWriteError(errno.ENOSPC, "No space left on device", "runs/x/round_01/trained.npz")
        >>> isinstance(e, OSError), e.errno == errno.ENOSPC, e.filename
        (True, True, 'runs/x/round_01/trained.npz')
    """


def run_dir(config: Config, root: str | Path = "runs/lottery_ticket", name: str = "study") -> Path:
    """The folder of a config's run: `<root>/<name>-<hash of the config>`.

    The hash is `Config.digest()` of `config`: another config gets another folder. Nothing is created.

    Example:
        >>> from funcnn.lottery import Config, run_dir
        >>> path = run_dir(Config(seeds=2), name="mnist1d")
        >>> path.as_posix()
        'runs/lottery_ticket/mnist1d-...'
        >>> run_dir(Config(seeds=3), name="mnist1d") == path  # a different study, a different folder
        False
    """
    return Path(root) / f"{name}-{config.digest()}"


def _prepare_folder(out: Path, config: Config | None) -> None:
    if not distributed.is_writer():
        return  # process 0 owns the run folder (which must be on a file system all hosts share)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"output folder {out} cannot be created: {e}") from None
    for stale in out.rglob(".*.tmp"):
        stale.unlink(missing_ok=True)  # a write that a kill interrupted; never valid
    if config is None:
        return
    cfg = out / "config.json"
    if cfg.exists():
        try:
            existing = json.loads(cfg.read_text())
        except ValueError:
            existing = None
        new = config.to_json()
        grows = isinstance(existing, dict) and {**existing, "rounds": new["rounds"]} == new
        if existing != new and not grows:
            changed = sorted(k for k in set(existing or {}) | set(new) if (existing or {}).get(k) != new.get(k))
            raise ValueError(
                f"output folder {out} holds a run with a different config ({cfg}; differs in {changed}); "
                "choose another --out or delete that folder"
            )
        if grows and isinstance(existing, dict) and new["rounds"] > existing["rounds"]:
            io.atomic_write_json(cfg, new)  # the same study given more rounds: it resumes and goes on
    else:
        try:
            io.atomic_write_json(cfg, config.to_json())
        except OSError as e:
            raise ValueError(f"output folder {out} is not writable: {e}") from None


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """Hold `out/LOCK` (an flock, released by the OS even when the process is killed)."""
    if not distributed.is_writer():
        yield
        return
    path = out / "LOCK"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = path.read_text().strip() or "another process"
        os.close(fd)
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise RunFolderBusy(
            f"run folder {out} is in use by {holder}; wait for it to end (or stop it) before starting another run there"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(
            fd, f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode()
        )
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_report(out: str | Path) -> dict:
    """The report of the rounds committed so far in run folder `out`, training nothing: what a long
    run has to show while it goes on, or after a kill. Stops at the first round that is missing or
    fails its checksum (a resumed run would train that one again).

    Example:
        >>> import tempfile
        >>> import jax
        >>> import optax
        >>> from funcnn import nn
        >>> from funcnn.lottery import Spec, load_report, run
        >>> x = jax.random.normal(jax.random.key(0), (64, 4))
        >>> y = (x[:, 0] > 0).astype("int32")
        >>> net = nn.serial(nn.Dense(8), nn.Relu(), nn.Dense(2))  # a 4-8-2 MLP
        >>> spec = Spec(net, optax.adam(1e-2), train=(x, y), n_val=16, iterations=20, batch_size=8, eval_every=10,
        ...             rounds=0, seeds=2)
        >>> with tempfile.TemporaryDirectory() as out:
        ...     report = run(spec, out=out, progress=False, log=lambda line: None)  # the dense round only
        ...     loaded = load_report(out)
        >>> loaded["rounds_completed"], loaded["complete"], loaded["summary"] == report["summary"]
        (1, True, True)
        >>> with tempfile.TemporaryDirectory() as empty:
        ...     load_report(empty)
        Traceback (most recent call last):
        ...
        ValueError: out ... does not hold a lottery run with a readable config.json or identity.json (...)
    """
    out = Path(out)
    try:
        ident = json.loads((out / "identity.json").read_text()) if (out / "identity.json").exists() else {}
        if (out / "config.json").exists():
            fields = json.loads((out / "config.json").read_text())
            fields["arms"] = tuple(fields["arms"])
            describe = Config(**fields).validate().to_json()
        else:
            describe = ident["study"]
        # The folder's rounds: the most any run there asked for (identity.json keeps the largest).
        total = max(int(describe["rounds"]), int(ident.get("study", {}).get("rounds", 0)))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(
            f"out {out} does not hold a lottery run with a readable config.json or identity.json ({e})"
        ) from None
    first = 0 if ident.get("dense_run", True) else 1  # a study of criteria alone starts at round 1
    rounds = []
    for r in range(first, total + 1):
        folder = out / f"round_{r:02d}"
        if not io.verify_commit(folder):
            break
        rounds.append(json.loads((folder / "metrics.json").read_text()))
    if not rounds:
        raise ValueError(f"out {out}: no round completed yet (round_{first:02d} has no valid COMMIT)")
    return report_lib.make_report(describe, total, rounds, out, None, first_round=first)
