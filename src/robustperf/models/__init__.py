"""Models: a registry of architectures behind one front door, `create_model`.

Every model takes inputs in [0, 1] and normalises inside (`NormalizedModel`).
"""

from robustperf.models import ensemble, resnet, timm_adapter, tiny, wide_resnet  # noqa: F401  (register the models)
from robustperf.models.base import (
    MODELS,
    ModelError,
    NormalizedModel,
    accepted_kwargs,
    count_parameters,
    create_model,
    make_activation,
)
from robustperf.models.loading import ModelSpec, load_run_model

__all__ = [
    "MODELS",
    "ModelError",
    "ModelSpec",
    "NormalizedModel",
    "accepted_kwargs",
    "count_parameters",
    "create_model",
    "load_run_model",
    "make_activation",
]
