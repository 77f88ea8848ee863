"""Old names kept for one release: each warns `DeprecationWarning` naming its replacement.

Every deprecated name in funcnn goes through `warn`, so they all say the same thing the same way:
"funcnn.lottery.ticket is deprecated (it goes in funcnn 0.4): use funcnn.lottery.weight_rewinding()".
Nothing here imports funcnn, so any module may use it.
"""

from __future__ import annotations

import warnings

__all__: list[str] = []  # funcnn's machinery, not an API

REMOVED_IN = "0.4"


def message(old: str, new: str) -> str:
    """The one wording of a deprecation: the old name, when it goes, and the new name."""
    return f"{old} is deprecated (it goes in funcnn {REMOVED_IN}): use {new}"


def warn(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that `old` is deprecated in favour of `new`; stacklevel 3 points at the caller of the
    function that calls `warn` (the user's line)."""
    warnings.warn(message(old, new), DeprecationWarning, stacklevel=stacklevel)
