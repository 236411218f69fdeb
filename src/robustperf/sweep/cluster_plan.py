"""What a planned study asks of a cluster: array size and throttle, GPU-hours, wall time, checkpoint storage.

``robustperf study STUDY --plan`` prints this and writes it into the manifest directory's ``plan.json``
(key ``cluster``). The GPU-hours follow from the training images each run processes (``optim.samples``, else
epochs x training set size) at a *stated* throughput per GPU (``--throughput``, images per second per GPU for the study's
method and model: measure it with ``benchmarks/train_throughput.py`` on the cluster's GPU); the wall time
assumes ideal scaling over a run's ranks and ``min(cluster GPUs, array throttle x GPUs per run)`` GPUs busy
at once. The storage counts each run's three checkpoints (last, previous, best), each holding the weights,
the optimiser's momentum and the EMA copy in fp32 (the weights alone when there is no EMA).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from robustperf.config import RunConfig
from robustperf.sweep.study import StudyConfig

# training-set sizes of the data sets a cluster plan usually names (used when the files are not on this machine)
KNOWN_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "svhn": 73_257, "mnist": 60_000, "digits": 1_437,
                     "imagenet": 1_281_167, "tiny_imagenet": 100_000}
CHECKPOINTS_PER_RUN = 3  # last.pt, last.prev.pt, best.pt


@dataclass(frozen=True)
class ClusterPlan:
    """The request a study makes; every field is in the manifest's plan.json."""

    n_runs: int
    array: str  # the sbatch --array value
    array_parallelism: int
    gpus_per_run: int
    ranks_per_run: int
    cluster_gpus: int
    throughput_img_per_s_per_gpu: float
    train_images: float  # summed over the runs
    gpu_hours: float
    concurrent_gpus: int
    wall_hours: float
    longest_run_hours: float
    timeout_hours: float
    runs_over_timeout: int  # runs that need more than the time limit (they requeue/resubmit from checkpoints)
    checkpoint_bytes: float
    params_total: int

    def lines(self) -> list[str]:
        """What the CLI prints."""
        return [
            f"array: {self.n_runs} tasks (--array={self.array}), at most {self.array_parallelism} at once; "
            f"{self.ranks_per_run} rank(s) and {self.gpus_per_run} GPU(s) per run",
            f"GPU-hours: {self.gpu_hours:,.1f} for {self.train_images:,.0f} training images at a stated "
            f"{self.throughput_img_per_s_per_gpu:,.0f} img/s per GPU",
            f"wall time: {self.wall_hours:,.1f} h with {self.concurrent_gpus} of the cluster's {self.cluster_gpus} GPUs "
            f"busy (longest run {self.longest_run_hours:.2f} h; {self.runs_over_timeout} run(s) longer than the "
            f"{self.timeout_hours:.1f} h limit resume across tasks)",
            f"checkpoint storage: {self.checkpoint_bytes / 2**30:,.1f} GiB ({CHECKPOINTS_PER_RUN} checkpoints per run, "
            f"{self.params_total:,} parameters over all runs) on the shared file system",
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_size(cfg: RunConfig) -> int:
    """Training images of one epoch: ``data.n_train``, else the data set's size (files or `KNOWN_TRAIN_SIZES`)."""
    if cfg.data.n_train:
        return int(cfg.data.n_train)
    if cfg.data.dataset in KNOWN_TRAIN_SIZES:
        return KNOWN_TRAIN_SIZES[cfg.data.dataset]
    from robustperf.data import check_data

    return check_data(cfg.data)


def parameter_count(cfg: RunConfig, cache: dict[str, int]) -> int:
    """Parameters of the run's model (built once per distinct model section, on the CPU)."""
    key = cfg.model.model_dump_json() + cfg.data.dataset
    if key not in cache:
        from robustperf.models import count_parameters, create_model

        classes = 100 if cfg.data.dataset == "cifar100" else 1000 if cfg.data.dataset == "imagenet" else 10
        shape = (1, 8, 8) if cfg.data.dataset == "digits" else (3, 224, 224) if cfg.data.dataset == "imagenet" \
            else (1, 28, 28) if cfg.data.dataset == "mnist" else (3, 32, 32)
        kwargs: dict[str, Any] = dict(cfg.model.kwargs)
        cache[key] = count_parameters(create_model(cfg.model.name, num_classes=classes, input_shape=shape, **kwargs))
    return cache[key]


def cluster_plan(study: StudyConfig, configs: list[RunConfig], *, throughput: float, cluster_gpus: int) -> ClusterPlan:
    """The cluster request of `configs` (the expanded study) at `throughput` img/s per GPU on `cluster_gpus` GPUs.

    Raises:
        ValueError: a non-positive throughput or GPU count (the message names the option).
    """
    if not throughput > 0 or not math.isfinite(throughput):
        raise ValueError(f"--throughput {throughput}: give the measured training images per second per GPU (> 0)")
    if cluster_gpus < 1:
        raise ValueError(f"--cluster-gpus {cluster_gpus}: give the GPUs the cluster lends this study (>= 1)")
    ex = study.executor
    gpus = max(1, ex.gpus_per_run) * ex.nodes_per_run
    cache: dict[str, int] = {}
    images = [c.optim.samples or c.optim.epochs * train_size(c) for c in configs]
    gpu_seconds = [n / throughput for n in images]  # ideal scaling: a run of g GPUs takes 1/g of the wall time
    concurrent = min(cluster_gpus, ex.array_parallelism * gpus)
    run_hours = [s / gpus / 3600 for s in gpu_seconds]
    params = [parameter_count(c, cache) for c in configs]
    per_param = [4 * (3 if c.optim.ema_decay else 2) for c in configs]  # weights + momentum (+ EMA), fp32
    n = len(configs)
    return ClusterPlan(
        n_runs=n, array=f"0-{n - 1}%{ex.array_parallelism}", array_parallelism=ex.array_parallelism,
        gpus_per_run=gpus, ranks_per_run=ex.world_size, cluster_gpus=cluster_gpus,
        throughput_img_per_s_per_gpu=throughput, train_images=float(sum(images)),
        gpu_hours=sum(gpu_seconds) / 3600, concurrent_gpus=concurrent,
        wall_hours=max(sum(gpu_seconds) / 3600 / concurrent, max(run_hours, default=0.0)),
        longest_run_hours=max(run_hours, default=0.0), timeout_hours=ex.timeout_min / 60,
        runs_over_timeout=sum(h > ex.timeout_min / 60 for h in run_hours),
        checkpoint_bytes=float(sum(CHECKPOINTS_PER_RUN * p * b for p, b in zip(params, per_param, strict=True))),
        params_total=sum(params),
    )


__all__ = ["ClusterPlan", "cluster_plan", "train_size"]
