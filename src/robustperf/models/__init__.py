"""Models: a registry of architectures behind one front door, `create_model`.

Every model takes inputs in [0, 1] and normalises inside (`NormalizedModel`).
"""

from robustperf.models import resnet, timm_adapter, tiny, wide_resnet  # noqa: F401  (register the models)
from robustperf.models.base import (
    MODELS,
    ModelError,
    NormalizedModel,
    accepted_kwargs,
    count_parameters,
    create_model,
    make_activation,
)

__all__ = [
    "MODELS",
    "ModelError",
    "NormalizedModel",
    "accepted_kwargs",
    "count_parameters",
    "create_model",
    "make_activation",
]
