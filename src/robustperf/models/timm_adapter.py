"""Any timm model by name, built offline (no hub): weights only from a local checkpoint file.

ViT-like models have a fixed patch grid; where timm accepts ``img_size`` we build the model for the data's
size, otherwise the wrapper resizes inputs (bilinear) to the size the model was built for.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from robustperf.models.base import MODELS, Built, InputShape, ModelError

log = logging.getLogger(__name__)


@MODELS.register("timm")
def timm_model(*, num_classes: int, input_shape: InputShape, model_name: str = "", pretrained: bool = False,
               checkpoint_path: str | None = None, img_size: int | None = None,
               patch_size: int | None = None) -> Built:
    """`timm.create_model(model_name, pretrained=False, num_classes=..., in_chans=...)`.

    Args:
        num_classes: classifier outputs.
        input_shape: (C, H, W) of the data.
        model_name: any name from `timm.list_models()`.
        pretrained: must stay False: no hub is reachable; use `checkpoint_path` for weights.
        checkpoint_path: a local state dict (timm's ``load_checkpoint`` format) to load.
        img_size: the resolution to build a ViT-like model for (default: the data's size when timm allows).
        patch_size: ViT patch side (e.g. 4 for 32x32 CIFAR images: an 8x8 token grid instead of the 2x2 a
            16-pixel patch gives); only for models that take it.
    """
    try:
        import timm
    except ImportError as exc:  # pragma: no cover - timm is a core dependency
        raise ModelError("timm models need `pip install timm`") from exc
    if not model_name:
        raise ModelError("model 'timm' needs model_name, e.g. --set model.kwargs.model_name=vit_tiny_patch16_224")
    if pretrained:
        raise ModelError("pretrained=True would download from a hub; pass checkpoint_path=/local/weights.pth")
    if not timm.is_model(model_name):
        raise ModelError(f"timm has no model {model_name!r} (see timm.list_models('{model_name[:4]}*'))")
    if patch_size is not None and patch_size < 1:
        raise ModelError(f"patch_size must be >= 1, got {patch_size}")
    channels, height, width = input_shape
    if checkpoint_path is not None:
        # a checkpoint fixes the network's input: RGB (grey data is repeated to 3 channels in the wrapper)
        # and, for ViTs, the resolution it was trained at (position embeddings), unless img_size is given
        net_channels = 3 if channels == 1 else channels
        net, size = _create(timm, model_name, num_classes, net_channels, img_size, patch_size)
        _load_weights(net, checkpoint_path)
    else:
        net_channels = channels
        net, size = _create(timm, model_name, num_classes, channels, img_size or height, patch_size)
    resize_to = None if size is None or size == (height, width) else size
    return Built(net, channels=net_channels, resize_to=resize_to)


def _create(timm: object, model_name: str, num_classes: int, channels: int,
            img_size: int | None, patch_size: int | None = None) -> tuple[nn.Module, tuple[int, int] | None]:
    """Build the model, passing img_size where timm accepts it; returns (model, fixed input size or None)."""
    create = timm.create_model  # type: ignore[attr-defined]
    kwargs: dict[str, object] = {"pretrained": False, "num_classes": num_classes, "in_chans": channels}
    vit_kwargs = {k: v for k, v in (("img_size", img_size), ("patch_size", patch_size)) if v}
    try:
        net = create(model_name, **kwargs, **vit_kwargs)
    except TypeError as exc:
        if patch_size is not None:
            raise ModelError(f"timm model {model_name!r} takes no patch_size (remove model.kwargs.patch_size)") from exc
        net = create(model_name, **kwargs)  # CNNs take no img_size: any input size works through global pooling
    return net, _fixed_size(net)


def _fixed_size(net: nn.Module) -> tuple[int, int] | None:
    """The input size a patch-embedding model is built for, or None when any size works."""
    patch_embed = getattr(net, "patch_embed", None)
    fixed = getattr(patch_embed, "img_size", None) if patch_embed is not None else None
    if fixed is not None and not getattr(patch_embed, "dynamic_img_size", False):
        return int(fixed[0]), int(fixed[1])
    return None


def _load_weights(net: nn.Module, checkpoint_path: str) -> None:
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ModelError(f"checkpoint_path {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        log.warning("loaded %s with %d missing and %d unexpected keys (e.g. %s)", path, len(missing),
                    len(unexpected), (list(missing) + list(unexpected))[:3])
