"""A study: a base RunConfig, a grid (or explicit list) of overrides, seeds, and what to do with the runs.

A study file is YAML::

    name: quickstart
    base: quickstart.yaml            # a RunConfig file (relative to the study file) or an inline mapping
    grid:                            # dotted keys -> values; the cartesian product is taken
      model.kwargs.width: [4, 8, 16]
      data.n_train: [300, 600, 1200]
    runs: []                         # or explicit override dicts (crossed with the grid when both are given)
    seeds: [0]
    evaluate: {attacks: [pgd], which: best, n_examples: 200}
    fit: {envelope: true, surface: chinchilla}
    forecast: {robust_acc_targets: [0.5, 0.6]}
    tuning: {grid: {optim.lr: [0.05, 0.2]}, select_on: robust_acc}   # optional: tuning runs per point
    executor: {name: local, workers: 2}

`expand(study)` turns it into the list of RunConfigs (deduplicated by run id, in grid order). Every
override is validated by `RunConfig`, so a misspelled key fails before any run starts.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robustperf.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    config_from_dict,
    format_validation_error,
    load_yaml_mapping,
    refuse_unheeded_eval_eps,
)
from robustperf.names import SAFE_NAME_RULE, check_name


class StudyError(ConfigError):
    """A study file that cannot be used; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EvaluateSpec(_Section):
    """Evaluation of each finished run's checkpoint after training (on top of the per-epoch PGD eval)."""

    attacks: tuple[str, ...] = Field((), description="attack names for robustperf.evaluate, e.g. [autoattack]")
    which: Literal["final", "best"] = Field("best", description="checkpoint to evaluate")
    n_examples: int = Field(500, ge=1, description="held-out test points")
    batch_size: int = Field(256, ge=1)
    seed: int = 0

    @property
    def key(self) -> str:
        """Name of this evaluation in result.json ``evaluations`` (so a rerun can tell it is done)."""
        return f"study_{self.which}_{'+'.join(self.attacks)}_{self.n_examples}"


class FitSpec(_Section):
    """Which laws to fit to the study's runs (papers/002 Sec. 3.2; papers/001 Eq. 3)."""

    envelope: bool = Field(True, description="power law on the best-run envelope of robust error/loss vs FLOPs")
    metrics: tuple[str, ...] = Field(("robust_acc", "adv_loss"), description="final.* columns to fit against FLOPs")
    n_bins: int = Field(19, ge=2, description="log-spaced FLOPs bins of the envelope (Debenedetti: 19)")
    surface: str = Field(
        "chinchilla", description="L(N, D) law on adversarial loss (a registered law a study can fit: "
        "robustperf.scaling.study_surfaces(), e.g. chinchilla, approach2) or none; needs >= 3 model sizes x 3 data sizes"
    )
    bootstrap: int = Field(200, ge=0, description="bootstrap resamples for intervals (0: none)")
    seed: int = 0

    @field_validator("surface")
    @classmethod
    def _registered_surface(cls, value: str) -> str:
        from robustperf.scaling.tables import study_surfaces

        allowed = (*study_surfaces(), "none")
        if value not in allowed:
            raise ValueError(f"unknown L(N, D) law {value!r}; choose one of {', '.join(allowed)}")
        return value


class ForecastSpec(_Section):
    """What the fitted laws are asked to forecast."""

    robust_acc_targets: tuple[float, ...] = Field((), description="robust accuracies in [0, 1] to reach")
    flops_budgets: tuple[float, ...] = Field((), description="training FLOPs budgets for compute-optimal N*, D*")

    @field_validator("robust_acc_targets")
    @classmethod
    def _in_unit_interval(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0.0 < t < 1.0 for t in v):
            raise ValueError("robust_acc_targets are fractions in (0, 1), e.g. 0.6 for 60 %")
        return v


class TuningSpec(_Section):
    """Hyperparameter tuning inside the study (papers/004: tuning is a hidden cost of a method).

    Every study point (grid x runs x seeds) is trained once per combination of ``grid``; the runs that
    differ only in these keys form one tuning group, the best of them on ``select_on`` is the selected
    run and the others are its tuning runs. The report fits laws to the selected runs and shows each
    selected run's cost alone and with its tuning runs' cost added.
    """

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values tried per point")
    select_on: Literal["robust_acc", "clean_acc", "adv_loss"] = Field(
        "robust_acc", description="final.* metric that picks the selected run of a tuning group"
    )

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if len(values) < 2:
                raise ValueError(f"tuning.grid key {key!r} needs >= 2 values to tune over; move it to `grid`")
        return grid


class _RankKeys(Protocol):  # read-only: the settings are frozen
    @property
    def procs_per_run(self) -> int | None: ...
    @property
    def gpus_per_run(self) -> int: ...
    @property
    def nodes_per_run(self) -> int: ...
    @property
    def cpus_per_run(self) -> int | None: ...
    @property
    def cpus_per_gpu(self) -> int: ...
    @property
    def ranks_per_node(self) -> int: ...


class RankLayout:
    """One run's processes, from the keys that lay them out (``gpus_per_run``, ``nodes_per_run``,
    ``procs_per_run``, ``cpus_per_run``, ``cpus_per_gpu``): mixed into `ExecutorSpec` and into the settings
    of the executors that start ranks (`robustperf.sweep.executors.RankShape`), so the rule is written once."""

    @property
    def ranks_per_node(self: _RankKeys) -> int:
        """Processes of one run on each of its nodes (one per GPU, or `procs_per_run` on CPU)."""
        return self.procs_per_run or max(1, self.gpus_per_run)

    @property
    def world_size(self: _RankKeys) -> int:
        """Processes (DDP ranks) of one run."""
        return self.ranks_per_node * self.nodes_per_run

    @property
    def cpus_per_rank(self: _RankKeys) -> int:
        """Cores requested for each rank."""
        return self.cpus_per_run or (self.cpus_per_gpu if self.gpus_per_run else 1)


class ExecutorSpec(RankLayout, _Section):
    """Where the runs execute: the study's ``executor:`` block as written (see `robustperf.sweep.executors`).

    It holds the keys of every built-in executor (the scheduler scripts, ``--plan`` and ``--resubmit`` read
    them whatever executor runs the study) and lets a plug-in executor's own keys through: each executor's
    settings class takes its keys out of it when the executor is built, and `create_executor` refuses a
    key the named executor does not take (or no executor takes), listing the keys it does.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field("local", description="local | manifest | slurm | submitit | ray")
    workers: int | None = Field(None, ge=1, description="parallel runs (default: GPUs, else CPU cores)")
    gpus_per_run: int = Field(1, ge=0, description="GPUs of one run on each of its nodes; >1 launches one rank per GPU")
    nodes_per_run: int = Field(1, ge=1, description="nodes of one run (ranks = nodes_per_run x ranks per node)")
    procs_per_run: int | None = Field(None, ge=1, description="ranks per node of one run (default: gpus_per_run, "
                                      "or 1 on CPU); set it to train a CPU run as several gloo ranks")
    cpus_per_run: int | None = Field(None, ge=1, description="CPU cores per rank (default: cpus_per_gpu per GPU, "
                                     "else 1)")
    cpus_per_gpu: int = Field(8, ge=1, description="cores requested per GPU rank: a data loader's workers plus one")
    mem_per_gpu_gb: int = Field(32, ge=0, description="host memory requested per GPU rank (GiB; 0: none)")
    mem_per_cpu_rank_gb: int = Field(4, ge=0, description="host memory requested per CPU-only rank (GiB; 0: none)")
    max_retries: int = Field(2, ge=0, description="times a study reruns a run a stop signal interrupted")
    warning_seconds: int = Field(120, ge=10, description="Slurm/LSF warn a task (USR1) this long before its time "
                                 "limit: it checkpoints at its current step and asks to be requeued")
    cluster: str | None = Field(None, description="submitit cluster: None (auto), slurm, local, debug")
    partition: str | None = None
    timeout_min: int = Field(240, ge=1)
    array_parallelism: int = Field(64, ge=1, description="Slurm %N: at most this many array tasks at once")
    scheduler_args: tuple[str, ...] = Field((), description="extra lines for the #SBATCH/#BSUB/#PBS header")
    submit: bool = Field(True, description="manifest: also run every index locally (False: only write scripts)")

    @property
    def mem_per_rank_gb(self) -> int:
        """Host memory (GiB) requested for each rank."""
        return self.mem_per_gpu_gb if self.gpus_per_run else self.mem_per_cpu_rank_gb


class StudyConfig(_Section):
    """A grid of runs plus what to evaluate, fit and forecast. Frozen; unknown keys are errors."""

    name: str = Field(..., min_length=1, description="study name; prefixes run ids and names the report")
    base: dict[str, Any] | str = Field(default_factory=dict, description="RunConfig mapping or YAML path")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted key -> values (cartesian)")
    runs: list[dict[str, Any]] = Field(default_factory=list, description="explicit override dicts; an entry's "
                                       "own `seeds: [...]` replaces the study's seeds for that entry")
    seeds: tuple[int, ...] = Field((0,), min_length=1, description="runtime.seed values (crossed with all)")
    runs_dir: str = Field("runs", description="where run directories go (CLI --runs-dir overrides)")
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    fit: FitSpec = Field(default_factory=FitSpec)
    forecast: ForecastSpec = Field(default_factory=ForecastSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    source_dir: str | None = Field(None, description="directory of the study file (set by load_study)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # the name becomes file names (studies/<name>.json, reports/<name>/) and a scheduler job name
        try:
            return check_name(name, "study name")
        except ValueError:
            raise ValueError(f"{name!r} is not a safe study name: use {SAFE_NAME_RULE}") from None

    @field_validator("grid")
    @classmethod
    def _grid_not_empty(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values; give at least one or remove it")
        return grid

    @field_validator("runs")
    @classmethod
    def _entry_seeds(cls, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, run in enumerate(runs):
            if "runtime.seed" in run:  # the study's seeds would silently replace it
                raise ValueError(f"runs[{i}] sets runtime.seed, which the study's seeds replace: give the entry "
                                 f"its own `seeds: [{run['runtime.seed']}]` instead")
            seeds = run.get("seeds")
            if seeds is not None and (not isinstance(seeds, list) or not seeds
                                      or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
                raise ValueError(f"runs[{i}] seeds={seeds!r}: give a non-empty list of integers, e.g. seeds: [2, 3]")
        return runs

    @model_validator(mode="after")
    def _base_resolvable(self) -> StudyConfig:
        if isinstance(self.base, str) and not self.base_path().is_file():
            raise ValueError(f"base config {str(self.base_path())!r} does not exist (path is relative to the study)")
        return self

    def base_path(self) -> Path:
        """The base RunConfig file (only when `base` is a path)."""
        path = Path(str(self.base))
        if not path.is_absolute() and self.source_dir:
            path = Path(self.source_dir) / path
        return path

    def base_dict(self) -> dict[str, Any]:
        """The base RunConfig as a mapping."""
        if isinstance(self.base, dict):
            return dict(self.base)
        try:
            return load_yaml_mapping(self.base_path(), "base config", allow_empty=True)
        except ConfigError as err:
            raise StudyError(str(err)) from None


def study_from_dict(data: dict[str, Any], source_dir: str | Path | None = None) -> StudyConfig:
    """Validate a mapping into a StudyConfig (relative `base` paths resolve against `source_dir`)."""
    payload = dict(data)
    if source_dir is not None and "source_dir" not in payload:
        payload["source_dir"] = str(Path(source_dir).resolve())
    try:
        return StudyConfig.model_validate(payload)
    except ValidationError as err:
        raise StudyError(format_validation_error(err, "study config")) from None


def load_study(path: str | Path) -> StudyConfig:
    """Read a study YAML file."""
    p = Path(path)
    try:
        data = load_yaml_mapping(p, "study file", "configs/quickstart_study.yaml")
    except ConfigError as err:
        raise StudyError(str(err)) from None
    return study_from_dict(data, source_dir=p.parent)


def grid_points(study: StudyConfig) -> list[dict[str, Any]]:
    """The override dicts of a study: explicit runs x grid product x seeds x tuning grid, in that order.

    An explicit run's own ``seeds`` replaces the study's for that run (e.g. extra seeds where the noise is).
    """
    keys = list(study.grid)
    product = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(study.grid[k] for k in keys))]
    explicit = study.runs or [{}]
    tkeys = list(study.tuning.grid)
    tuning = [dict(zip(tkeys, c, strict=True)) for c in itertools.product(*(study.tuning.grid[k] for k in tkeys))]
    points = []
    for entry in explicit:
        run = {k: v for k, v in entry.items() if k != "seeds"}
        for combo in product:
            for seed in entry.get("seeds") or study.seeds:
                for tune in tuning:  # [{}] without tuning
                    points.append({**run, **combo, **tune, "runtime.seed": seed})
    return points


def expand(study: StudyConfig) -> list[RunConfig]:
    """Every RunConfig of the study, validated, deduplicated by run id, in grid order.

    Raises:
        StudyError: an override names an unknown key or an invalid value (the message says which point).
    """
    base = study.base_dict()
    base.setdefault("name", study.name)
    configs: list[RunConfig] = []
    seen: set[str] = set()
    for i, point in enumerate(grid_points(study)):
        try:
            cfg = config_from_dict(apply_overrides(base, point))
            refuse_unheeded_eval_eps(base, cfg, point)  # the study's own words, like a config file's
        except ConfigError as err:
            raise StudyError(f"study {study.name!r}, grid point {i} {point}: {err}") from None
        if cfg.run_id not in seen:
            seen.add(cfg.run_id)
            configs.append(cfg)
    return configs


def run_id_of(config: dict[str, Any]) -> str:
    """The run id of what an executor runs: a resolved RunConfig, or a payload that names its run id
    (``{"run_id": ..., "config": ...}``, what the LLM study ships).

    Raises:
        ConfigError: an invalid RunConfig.
    """
    if isinstance(config.get("run_id"), str) and isinstance(config.get("config"), dict):
        return str(config["run_id"])
    return config_from_dict(config).run_id
