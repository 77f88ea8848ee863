"""Deprecated: the leaf-by-leaf helpers of `funcnn.io` are private now (`funcnn._io_leaves`); importing this
module warns, and it goes in funcnn 0.4. Save and load trees with `funcnn.io.save_tree` and
`funcnn.io.load_tree`."""

from funcnn import _deprecation
from funcnn._io_leaves import _EXTENDED as _EXTENDED
from funcnn._io_leaves import _META as _META
from funcnn._io_leaves import _SCALARS as _SCALARS
from funcnn._io_leaves import _describe as _describe
from funcnn._io_leaves import _flat as _flat
from funcnn._io_leaves import _is_key as _is_key
from funcnn._io_leaves import _key_impl as _key_impl
from funcnn._io_leaves import _names as _names
from funcnn._io_leaves import _native as _native

__all__: list[str] = []  # it never had public names

_deprecation.warn("funcnn.io_leaves", "funcnn.io (save_tree, load_tree)")
