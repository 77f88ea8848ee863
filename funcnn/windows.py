"""Window arithmetic shared by convolution and pooling: padding, strides and output sizes.

Padding is "VALID", "SAME", an int p (p on every side) or ((top, bottom), (left, right)) (for 1-D:
(left, right)); strides are an int or a pair (1-D: an int). Each spatial output size is
out = floor((n + pad_total - k) / s) + 1. Shapes are channels-last: (*batch, H, W, C), (*batch, L, C).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import jax

__all__ = ["output_hw", "output_len", "output_size", "resolve_padding", "resolve_padding_1d"]

Array = jax.Array
Padding = str | int | Sequence[Sequence[int]]
Pair = int | Sequence[int]
Pads = tuple[tuple[int, int], ...]  # ((top, bottom), (left, right)): explicit padding, one pair per spatial axis


def output_size(n: int, k: int, s: int = 1, pad_total: int = 0) -> int:
    """floor((n + pad_total - k) / s) + 1: the output length of a window k sliding with stride s.

    Example:
        >>> from funcnn import windows
        >>> windows.output_size(28, 5)  # a window of 5 over 28 pixels, no padding
        24
        >>> windows.output_size(28, 3, s=2, pad_total=2)
        14
    """
    return (n + pad_total - k) // s + 1


def pair(value: Pair, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a validated pair of positive ints."""
    v: tuple[Any, ...]
    if isinstance(value, int) and not isinstance(value, bool):
        v = (value, value)
    else:
        v = tuple(cast(Sequence[int], value))  # a bool lands here too: tuple(True) raises TypeError
    if len(v) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in v):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {name}={value!r}")
    return v[0], v[1]


def resolve_padding(padding: Padding, in_hw: Sequence[int], k_hw: Sequence[int], strides: Sequence[int]) -> Pads:
    """Explicit ((top, bottom), (left, right)) for any padding form (SAME as XLA: extra at the end).

    Example:
        >>> from funcnn import windows
        >>> windows.resolve_padding("SAME", (28, 28), (3, 3), (1, 1))
        ((1, 1), (1, 1))
        >>> windows.resolve_padding("SAME", (28, 28), (3, 3), (2, 2))  # one pixel in all, at the end
        ((0, 1), (0, 1))
        >>> windows.resolve_padding(2, (28, 28), (5, 5), (1, 1))
        ((2, 2), (2, 2))
    """
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return ((0, 0), (0, 0))
        if padding.upper() == "SAME":
            out = []
            for n, k, s in zip(in_hw, k_hw, strides, strict=True):
                total = max((-(-n // s) - 1) * s + k - n, 0)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise ValueError(
            f"padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)), got padding={padding!r}"
        )
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got padding={padding!r}")
        return ((padding, padding), (padding, padding))
    pads: Pads = ()
    if not isinstance(padding, int):  # a bool is no padding: pads stays () and the error below says so
        try:
            pads = tuple((int(a), int(b)) for a, b in padding)
        except (TypeError, ValueError):
            pads = ()
    if len(pads) != 2 or any(p < 0 for pr in pads for p in pr):
        raise ValueError(
            "padding must be 'VALID', 'SAME', an int or ((top, bottom), (left, right)) of ints >= 0, "
            f"got padding={padding!r}"
        )
    return pads


def output_hw(
    in_hw: Sequence[int], k_hw: Sequence[int], strides: Pair = 1, padding: Padding = "VALID"
) -> tuple[int, int]:
    """(H_out, W_out) for an input (H, W), a window (kh, kw), strides and padding; raises if empty.

    Example:
        >>> from funcnn import windows
        >>> windows.output_hw((28, 28), (5, 5))
        (24, 24)
        >>> windows.output_hw((28, 28), (3, 3), strides=2, padding="SAME")  # SAME: ceil(28 / 2)
        (14, 14)
    """
    stride_hw = pair(strides, "stride")
    pads = resolve_padding(padding, in_hw, k_hw, stride_hw)
    out = []
    for n, k, s, (lo, hi) in zip(in_hw, k_hw, stride_hw, pads, strict=True):
        if k > n + lo + hi:
            raise ValueError(
                f"kernel/window size {tuple(k_hw)} is larger than the padded input {tuple(in_hw)} with padding {pads}"
            )
        out.append(output_size(n, k, s, lo + hi))
    return out[0], out[1]


def _as_nhwc(x: Array, name: str = "x") -> tuple[Array, tuple[int, ...]]:
    """Fold any leading batch axes (zero or more) into one: (*batch, H, W, C) -> (N, H, W, C)."""
    if x.ndim < 3:
        raise ValueError(
            f"{name} must be (H, W, C) or (*batch, H, W, C), got shape {tuple(x.shape)} (rank {x.ndim}); "
            "add a channel axis with x[..., None] for grayscale images"
        )
    batch = x.shape[:-3]
    return x.reshape((-1,) + x.shape[-3:]), batch


def resolve_padding_1d(padding: Padding | Sequence[int], n: int, k: int, stride: int) -> tuple[int, int]:
    """Explicit (left, right) for a 1-D padding: "VALID", "SAME" (as XLA: extra at the end), an int p
    (p on each side) or a pair (left, right).

    Example:
        >>> from funcnn import windows
        >>> windows.resolve_padding_1d("SAME", 10, 4, 1)  # 3 in all for a window of 4, the odd one at the end
        (1, 2)
        >>> windows.resolve_padding_1d((0, 3), 10, 4, 1)
        (0, 3)
    """
    if isinstance(padding, str) or (isinstance(padding, int) and not isinstance(padding, bool)):
        return resolve_padding(padding, (n, 1), (k, 1), (stride, 1))[0]
    items: Sequence[Any] = () if isinstance(padding, int) else padding  # a bool is no padding: the error below
    try:
        pads = tuple(int(p) for p in items)
    except (TypeError, ValueError):
        pads = ()
    if len(pads) != 2 or any(p < 0 for p in pads) or any(isinstance(p, bool) for p in items):
        raise ValueError(
            f"padding must be 'VALID', 'SAME', an int or a pair (left, right) of ints >= 0 for a 1-D "
            f"convolution, got padding={padding!r}"
        )
    return pads[0], pads[1]


def positive_int(value: int, name: str) -> int:
    """A validated positive int (bools rejected)."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {name}={value!r}")
    return value


def output_len(n: int, k: int, stride: int = 1, padding: Padding | Sequence[int] = "VALID") -> int:
    """L_out for an input length n, a window k, a stride and a 1-D padding; raises if empty.

    Example:
        >>> from funcnn import windows
        >>> windows.output_len(40, 5)
        36
        >>> windows.output_len(40, 5, stride=2, padding="SAME")  # SAME: ceil(40 / 2)
        20
    """
    stride = positive_int(stride, "stride")
    lo, hi = resolve_padding_1d(padding, n, k, stride)
    if k > n + lo + hi:
        raise ValueError(f"kernel size {k} is larger than the padded input length {n} with padding {(lo, hi)}")
    return output_size(n, k, stride, lo + hi)
