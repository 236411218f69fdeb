"""Studies: grids of runs, executors (local pool, scheduler manifest, submitit, Ray) and `run_one`.

Importing this package does not import torch; the worker processes do, after pinning GPUs and threads.
"""

from robustperf.sweep.executors import (
    EXECUTORS,
    ExecutionResult,
    Executor,
    ExecutorError,
    create_executor,
    visible_gpus,
)
from robustperf.sweep.manifest import (
    ManifestError,
    array_index_from_env,
    read_manifest,
    run_manifest_index,
    write_manifest,
    write_scheduler_scripts,
)
from robustperf.sweep.run import run_one
from robustperf.sweep.runner import StudyResult, load_saved_study, run_study, save_study, study_fn
from robustperf.sweep.study import (
    EvaluateSpec,
    ExecutorSpec,
    FitSpec,
    ForecastSpec,
    StudyConfig,
    StudyError,
    expand,
    grid_points,
    load_study,
    study_from_dict,
)

__all__ = [
    "EXECUTORS",
    "EvaluateSpec",
    "ExecutionResult",
    "Executor",
    "ExecutorError",
    "ExecutorSpec",
    "FitSpec",
    "ForecastSpec",
    "ManifestError",
    "StudyConfig",
    "StudyError",
    "StudyResult",
    "array_index_from_env",
    "create_executor",
    "expand",
    "grid_points",
    "load_saved_study",
    "load_study",
    "read_manifest",
    "run_manifest_index",
    "run_one",
    "run_study",
    "save_study",
    "study_fn",
    "study_from_dict",
    "visible_gpus",
    "write_manifest",
    "write_scheduler_scripts",
]
