"""Adversarial training: methods (registry), the loop, checkpoints, schedules, EMA, DDP.

>>> from robustperf.config import load_config
>>> from robustperf.training import train, load_run_model
>>> run_dir = train(load_config("configs/quickstart.yaml"), "runs")
>>> model, cfg = load_run_model(run_dir, which="best")
"""

from robustperf.training.checkpoint import CheckpointError
from robustperf.training.loop import TrainEvent, TrainingError, TrainingInterrupted, load_run_model, train
from robustperf.training.methods import METHODS, StepOutput, TrainingMethod, create_method

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
