"""Where a study's wall time goes: each part timed once, compiling counted apart, the rest 'other'.

`run` opens a `Ledger` for the invocation; every part it does (data and θ0, identity, masks, training,
saves, figures) runs inside `Ledger.phase(name)`. Compiling inside a part (`compile_cache.CompileClock`:
tracing, lowering, XLA) is moved to 'compiling', and `summary()` adds 'other' so the parts add up to
the wall time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from funcnn.compile_cache import CompileClock

__all__ = ["Ledger"]


class Ledger:
    """Seconds by part of one invocation (see the module docstring).

    Example:
        >>> import time
        >>> from funcnn.lottery.ledger import Ledger
        >>> ledger = Ledger()
        >>> with ledger.clock:
        ...     with ledger.phase("saves"):
        ...         time.sleep(0.01)
        >>> seconds = ledger.summary()
        >>> seconds["saves"] >= 0.01, abs(sum(seconds.values()) - ledger.wall()) < 1e-3
        (True, True)
    """

    def __init__(self) -> None:
        self.clock = CompileClock()
        self.seconds: dict[str, float] = {}
        self.cache: Path | None = None
        self.started = time.perf_counter()
        self.ended: float | None = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as `name`, less its compiling (counted as 'compiling')."""
        t, c = time.perf_counter(), self.clock.total
        try:
            yield
        finally:
            compiled = self.clock.total - c
            self.seconds[name] = self.seconds.get(name, 0.0) + (time.perf_counter() - t) - compiled
            self.seconds["compiling"] = self.seconds.get("compiling", 0.0) + compiled

    def wall(self) -> float:
        """Seconds since the ledger was made."""
        return time.perf_counter() - self.started

    def summary(self) -> dict[str, float]:
        """{part: seconds}, with 'compiling' and 'other' (the rest of the wall time so far): they add up."""
        out = dict(self.seconds)
        out.setdefault("compiling", 0.0)
        out["other"] = max(self.wall() - sum(out.values()), 0.0)
        return out
