"""Adversarial training: methods (registry), the loop, schedules, EMA, DDP.

>>> from robustperf.config import load_config
>>> from robustperf.models import load_run_model
>>> from robustperf.training import train
>>> run_dir = train(load_config("configs/quickstart.yaml"), "runs")
>>> model, cfg = load_run_model(run_dir, which="best")
"""

from robustperf.models.loading import load_run_model  # re-exported: it used to live here
from robustperf.store.checkpoint import CheckpointError
from robustperf.training.loop import TrainEvent, train
from robustperf.training.methods import METHODS, StepOutput, TrainingMethod, create_method
from robustperf.training.setup import TrainingError
from robustperf.training.signals import TrainingInterrupted

__all__ = [
    "METHODS",
    "CheckpointError",
    "StepOutput",
    "TrainEvent",
    "TrainingError",
    "TrainingInterrupted",
    "TrainingMethod",
    "create_method",
    "load_run_model",
    "train",
]
