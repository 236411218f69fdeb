"""Robustness evaluation: `evaluate` (any attack or the AutoAttack cascade) and RobustBench-style `benchmark`.

from robustperf.evaluation import evaluate
result = evaluate(model, x, y, attack="autoattack", eps=8 / 255)
"""

from robustperf.evaluation.benchmark import Norm, benchmark
from robustperf.evaluation.evaluate import (
    ADV_FILE,
    RESULT_FILE,
    EvalResult,
    EvalSpec,
    EvaluationError,
    evaluate,
    save_result,
)

__all__ = [
    "ADV_FILE",
    "RESULT_FILE",
    "EvalResult",
    "EvalSpec",
    "EvaluationError",
    "Norm",
    "benchmark",
    "evaluate",
    "save_result",
]
