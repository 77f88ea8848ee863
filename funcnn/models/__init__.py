"""Named networks: MLPs, LeNet-300-100, LeNet-5, the lottery-ticket paper's Conv-2/4/6, OpenLTH's
CIFAR ResNets and VGGs (with BatchNorm), and the MNIST-1D lottery notebook's residual MLP and CNN.

Each factory returns a `Layer`; its `init(key, input_shape)` takes the input shape without the batch
axes: (H, W, C) for the image nets, (40,) for the MNIST-1D nets. The ResNets and VGGs carry
BatchNorm state: use `net.init_state(input_shape)` and `net.apply_with_state`, or pass the net
itself to `funcnn.fit` / `funcnn.train.make_train_step`.

    mlps.py          mlp, lenet_300_100
    convnets.py      lenet5, cnn, conv2, conv4, conv6
    openlth.py       resnet, resnet20, vgg, vgg11, vgg16 (BatchNorm)
    mnist1d_nets.py  resmlp, mnist1d_cnn
    inits.py         the reference initializers (OpenLTH's, PyTorch's)
    registry.py      MODELS, build(name)
"""

from funcnn.models.convnets import cnn, conv2, conv4, conv6, lenet5
from funcnn.models.inits import BN_SCALE_INIT as BN_SCALE_INIT
from funcnn.models.inits import KAIMING_NORMAL as KAIMING_NORMAL
from funcnn.models.inits import TORCH_W_INIT as TORCH_W_INIT
from funcnn.models.inits import torch_bias_init as torch_bias_init
from funcnn.models.mlps import lenet_300_100, mlp
from funcnn.models.mnist1d_nets import mnist1d_cnn, resmlp
from funcnn.models.openlth import VGG11_PLAN, VGG16_PLAN, resnet, resnet20, vgg, vgg11, vgg16
from funcnn.models.registry import MODELS, build

__all__ = [
    "MODELS",
    "VGG11_PLAN",
    "VGG16_PLAN",
    "build",
    "cnn",
    "conv2",
    "conv4",
    "conv6",
    "lenet5",
    "lenet_300_100",
    "mlp",
    "mnist1d_cnn",
    "resmlp",
    "resnet",
    "resnet20",
    "vgg",
    "vgg11",
    "vgg16",
]
