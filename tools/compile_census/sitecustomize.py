"""Counts JAX's compile events in every Python process started with this folder on PYTHONPATH.

`tools/compile_census.py` puts it there; a process that imports `jax.monitoring` gets a listener that
sums each event's count and seconds, written as `<pid>.json` into $FUNCNN_COMPILE_CENSUS at exit (or,
for pytest-xdist's workers, which leave without running atexit, at the end of their session:
`census_pytest.py`). Nothing else of the process changes, but it hides any other sitecustomize on
the path for the measured command.
"""

import atexit
import importlib.machinery
import json
import os
import sys
import time

_START = time.time()
_SUMS: dict[str, list] = {}


def _listen(event: str, duration: float, **_: object) -> None:
    count_seconds = _SUMS.setdefault(event, [0, 0.0])
    count_seconds[0] += 1
    count_seconds[1] += duration


class _AfterJaxMonitoring:
    """Import hook: runs jax.monitoring's own import, then registers the listener (no jax import here,
    so a process that never uses JAX pays nothing)."""

    def find_spec(self, name, path, target=None):
        if name != "jax.monitoring":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.register_event_duration_secs_listener(_listen)
            sys.meta_path.remove(self)  # its one job done: later imports skip it

        spec.loader.exec_module = exec_module
        return spec


def write() -> None:
    """This process's sums as <pid>.json (again at exit: the later file is the complete one)."""
    folder = os.environ.get("FUNCNN_COMPILE_CENSUS")
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    record = {"argv": sys.argv, "wall_s": time.time() - _START, "events": _SUMS}
    path = os.path.join(folder, f"{os.getpid()}.json")
    with open(path + ".tmp", "w") as f:  # then renamed: a process killed mid-write leaves no half file
        json.dump(record, f)
    os.replace(path + ".tmp", path)


if os.environ.get("FUNCNN_COMPILE_CENSUS"):
    sys.meta_path.insert(0, _AfterJaxMonitoring())
    atexit.register(write)
