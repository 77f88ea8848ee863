"""Deprecated: the convolution and pooling layers live in `funcnn.nn.conv_layers` (importing this module
warns; it goes in funcnn 0.4). Reach them as `funcnn.nn.Conv2D`, `funcnn.nn.MaxPool`, ...; convolution
as plain functions is `funcnn.conv`."""

from funcnn import _deprecation
from funcnn.nn.conv_layers import AvgPool, Conv1D, Conv2D, GlobalAvgPool, MaxPool

__all__ = ["AvgPool", "Conv1D", "Conv2D", "GlobalAvgPool", "MaxPool"]

_deprecation.warn("funcnn.nn.conv", "funcnn.nn.conv_layers (or funcnn.nn.Conv2D and the other layers)")
