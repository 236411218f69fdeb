"""The training loop: one loop for every method, resumable bit for bit, writing one run directory.

``train(cfg)`` builds data, model, method, optimiser, schedule and EMA from a `RunConfig`, then runs
``method.step -> backward -> optimiser step -> EMA`` per batch, evaluates clean and PGD accuracy on a
fixed held-out subset every ``eval.every_n_epochs`` epochs, and writes (rank 0 only)::

    runs/<run_id>/config.json      resolved config
    runs/<run_id>/metrics.jsonl    {"kind": "train", ...} every log_every_n_steps, {"kind": "eval", ...} per eval
    runs/<run_id>/result.json      RunRecord: status, final, best, cost, provenance
    runs/<run_id>/checkpoints/     last.pt, last.prev.pt, best.pt

A checkpoint holds model, optimiser, EMA, method (attack RNG), loader (mid-epoch position), global RNG
states and progress counters; the schedule is a pure function of the step. On a CPU a run killed at
any point and resumed therefore reaches the same weights as one that never stopped.

SIGTERM and SIGUSR1 (what Slurm's ``scancel``, a time limit with ``--signal=USR1@120`` or a preempting
scheduler send) stop a run gracefully: the step in flight completes, ``last.pt`` is written at that
step, ``result.json`` says ``interrupted`` and `TrainingInterrupted` is raised. The same command then
resumes at that step instead of at the last epoch checkpoint.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from robustperf.config import RunConfig
from robustperf.store import RunDir, provenance, utcnow
from robustperf.store.lock import hold_run
from robustperf.store.repair import truncate_metrics_after
from robustperf.training import checkpoint as ckpt
from robustperf.training.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    broadcast_flag,
    dist_info_from_env,
    init_distributed,
)
from robustperf.training.ema import EMA
from robustperf.training.evaluation import eval_settings, evaluate_robustness
from robustperf.training.methods import StepOutput, TrainingMethod, create_method
from robustperf.training.optim import build_optimizer, set_lr
from robustperf.training.schedules import LRSchedule

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


class TrainingError(ValueError):
    """A run that cannot start or continue as configured; the message names the fix."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class TrainingInterrupted(RuntimeError):
    """A run stopped by a signal after writing a checkpoint at the current step; rerun it to resume.

    Attributes:
        signum: the signal received; a CLI exits with ``128 + signum`` as a shell would.
        step: the step the checkpoint holds.
    """

    def __init__(self, signum: int, step: int, run_dir: Path) -> None:
        self.signum, self.step = signum, step
        super().__init__(f"{signal.Signals(signum).name} received: checkpoint written at step {step} in "
                         f"{run_dir}; run the same command again to resume from it")


class _StopRequest:
    """Records the first SIGTERM/SIGUSR1 while installed; a second one gets the previous handler's
    behaviour (default: terminate at once), so a stuck run can still be killed."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("%s received: finishing this step, writing a checkpoint, then stopping",
                        signal.Signals(signum).name)
            return
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.__exit__()
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signum)


@dataclass(frozen=True)
class TrainEvent:
    """What the loop reports to an optional callback (the CLI draws its progress bar from these).

    Attributes:
        kind: "start", "step", "eval", "end", "failed" or "interrupted".
        step: optimiser steps done so far.
        total_steps: optimiser steps of the whole run.
        epoch: current epoch (0-based).
        samples_seen: training images processed by all ranks.
        metrics: numbers of the event (eval metrics, or the logged train metrics).
        model: the trained module (unwrapped) on "end" and "step" events, for tests and tools.
    """

    kind: str
    step: int
    total_steps: int
    epoch: int
    samples_seen: int
    metrics: dict[str, float] = field(default_factory=dict)
    model: nn.Module | None = None


Callback = Callable[[TrainEvent], None]


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """"auto" -> this rank's GPU if CUDA is available, else CPU; "cuda" -> this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{info.local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"runtime.device={name!r} but CUDA is not available: use runtime.device=cpu or auto")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_backends(cfg: RunConfig, device: torch.device) -> None:
    """Deterministic kernels when asked; otherwise cuDNN autotuning on GPUs."""
    if cfg.runtime.deterministic:
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """bf16 autocast on the device when ``precision == "bf16"`` (a no-op context for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class StepRunner:
    """One optimisation step of any method: the body of the loop, also used by the throughput benchmark.

    ``method.step`` (attack + loss) under autocast -> ``backward`` -> ``method.after_backward`` (AWP) ->
    gradient clipping -> learning rate -> optimiser step -> EMA update.
    """

    def __init__(
        self,
        method: TrainingMethod,
        model: nn.Module,
        raw: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        ema: EMA | None = None,
        precision: str = "fp32",
        channels_last: bool = False,
        grad_clip: float | None = None,
    ) -> None:
        self.method, self.model, self.raw, self.optimizer, self.ema = method, model, raw, optimizer, ema
        self.precision, self.channels_last, self.grad_clip = precision, channels_last, grad_clip
        self.device = next(raw.parameters()).device

    def __call__(self, x: Tensor, y: Tensor, lr: float) -> StepOutput:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            out = self.method.step(self.model, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.method.after_backward(self.model)
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.raw.parameters(), self.grad_clip)
        set_lr(self.optimizer, lr)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.raw)
        return out


def train(
    cfg: RunConfig,
    runs_dir: str | Path = "runs",
    *,
    resume: bool = True,
    callback: Callback | None = None,
    checkpoint_every_n_steps: int | None = None,
    force: bool = False,
) -> RunDir:
    """Train the run `cfg` describes in ``runs_dir/cfg.run_id`` and return its directory.

    Idempotent: a finished run with the same run id is returned untouched; an interrupted one resumes
    from its last checkpoint. A non-finite loss ends the run with status "failed" and the reason in
    ``result.json`` (nothing written before is lost); check ``run_dir.read_record().status``.

    Args:
        cfg: the run's configuration.
        runs_dir: directory holding one folder per run.
        resume: continue an interrupted run; False starts it over (checkpoints and metrics are replaced,
            a finished run is retrained).
        callback: called with a `TrainEvent` at start, every step, every evaluation and at the end.
        checkpoint_every_n_steps: also write ``last.pt`` every this many steps (mid-epoch resume
            points), in addition to every ``runtime.checkpoint_every_n_epochs`` epochs.
        force: take the run's lock even though it is reported as held (only once its holder is gone).

    Raises:
        RunLockedError: another live process is training this run.
        TrainingError: the configured device does not exist, or a checkpoint does not fit the run.
        CheckpointError: checkpoints exist but none is loadable.
    """
    info = dist_info_from_env()
    run_dir = RunDir.for_run(runs_dir, cfg.run_id)
    # one owner per run (rank 0 holds it for all ranks): a second process refuses with RunLockedError
    lock = hold_run(run_dir.path, force=force) if info.is_main else None
    try:
        if resume and run_dir.is_finished():
            log.info("run %s is already finished: %s", cfg.run_id, run_dir.path)
            return run_dir
        device = resolve_device(cfg.runtime.device, info)
        created = init_distributed(info, device)
        saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                 torch.backends.cudnn.benchmark)
        try:
            return _Trainer(cfg, run_dir, info, device, callback, checkpoint_every_n_steps).run(resume)
        finally:
            # configure_backends changes process-wide switches: leave them as we found them
            torch.use_deterministic_algorithms(saved[0])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]
            if created:
                torch.distributed.destroy_process_group()
    finally:
        if lock is not None:
            lock.release()


class _Trainer:
    """State of one training run; `run` is the whole lifecycle."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: RunDir,
        info: DistInfo,
        device: torch.device,
        callback: Callback | None,
        checkpoint_every_n_steps: int | None,
    ) -> None:
        self.cfg, self.run_dir, self.info, self.device = cfg, run_dir, info, device
        self.callback = callback
        self.ckpt_steps = checkpoint_every_n_steps or cfg.runtime.checkpoint_every_n_steps
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.samples_seen = 0
        self.best: dict[str, Any] = {}
        self.last_eval: dict[str, Any] = {}
        self.prior_seconds = 0.0
        self.prior_joules: float | None = 0.0
        self.sums: dict[str, Tensor | int] = {}  # running sums; "n" counts the batches
        self.epoch_loss = torch.zeros((), dtype=torch.float64, device=device)
        self.epoch_batches = 0
        self.metrics_bytes: int | None = None  # size of metrics.jsonl when the resumed checkpoint was written

    # ------------------------------------------------------------------------------------ setup

    def _build(self) -> None:
        from robustperf.data import build_data, eval_tensors, make_train_loader
        from robustperf.models import count_parameters, create_model

        cfg, device = self.cfg, self.device
        configure_backends(cfg, device)
        seed_everything(cfg.runtime.seed)  # identical initial weights on every rank
        self.bundle = build_data(cfg.data, seed=cfg.runtime.seed)
        model = create_model(
            cfg.model.name,
            num_classes=self.bundle.num_classes,
            input_shape=tuple(self.bundle.input_shape),
            mean=self.bundle.mean,
            std=self.bundle.std,
            **cfg.model.kwargs,
        ).to(device)
        if cfg.runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.raw = model
        self.n_params = count_parameters(model)
        self.loader = make_train_loader(
            self.bundle, cfg.data, seed=cfg.runtime.seed, device=device,
            rank=self.info.rank, world_size=self.info.world_size,
        )
        self.steps_per_epoch = len(self.loader)
        if self.steps_per_epoch < 1:
            raise TrainingError("the training loader yields no batch: lower data.batch_size or raise data.n_train")
        self.total_steps = self._total_steps()
        self.n_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.optimizer = build_optimizer(model, cfg.optim)
        warmup = round(cfg.optim.warmup_epochs * self.steps_per_epoch)
        self.schedule = LRSchedule(cfg.optim.schedule, self.total_steps, warmup, tuple(cfg.optim.milestones))
        self.ema = EMA(model, cfg.optim.ema_decay, cfg.optim.ema_warmup_steps) if cfg.optim.ema_decay else None
        generator = torch.Generator(device=device).manual_seed(cfg.runtime.seed * 1000 + 17 + self.info.rank)
        self.method: TrainingMethod = create_method(cfg.method, generator=generator)
        # the same held-out subset for every run (seed 0), so runs with different seeds compare directly
        x_eval, y_eval = eval_tensors(self.bundle.test, cfg.eval.n_examples, seed=0)
        self.x_eval, self.y_eval = x_eval.to(device), y_eval.to(device)
        self.eval_settings = eval_settings(cfg)
        self.model = self._wrap(model)
        self.stepper = StepRunner(self.method, self.model, self.raw, self.optimizer, ema=self.ema,
                                  precision=cfg.runtime.precision, channels_last=cfg.runtime.channels_last,
                                  grad_clip=cfg.optim.grad_clip)

    def _total_steps(self) -> int:
        """Steps of the run: ``optim.samples`` (global images) when set, else ``optim.epochs`` epochs."""
        if self.cfg.optim.samples is None:
            return self.cfg.optim.epochs * self.steps_per_epoch
        global_batch = self.cfg.data.batch_size * self.info.world_size
        return max(1, math.ceil(self.cfg.optim.samples / global_batch))

    def _wrap(self, model: nn.Module) -> nn.Module:
        """torch.compile (opt-in), then DDP when distributed. Checkpoints always use `self.raw`."""
        # torch.compile of a module returns an OptimizedModule (an nn.Module); its stub only says Callable
        fast = cast(nn.Module, torch.compile(model)) if self.cfg.runtime.compile else model
        if not self.info.enabled:
            return fast
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(fast, device_ids=ids)

    def _autocast(self) -> torch.autocast:
        return autocast(self.device, self.cfg.runtime.precision)

    # ------------------------------------------------------------------------------- lifecycle

    def run(self, resume: bool) -> RunDir:
        self._build()
        restored = self._restore() if resume else None
        if self.info.is_main:
            self._open_run_dir(restored is not None, resume)
        barrier(self.info)
        self._emit("start")
        from robustperf.cost.energy import create_meter

        index = self.device.index if self.device.type == "cuda" else None
        self.meter = create_meter(self.cfg.cost.energy_meter, device_index=index)
        self.meter.start()
        self.t_start = time.perf_counter()
        try:
            with _StopRequest() as self.stop:
                failure = self._loop()
        except TrainingInterrupted:
            raise
        except Exception as exc:
            self._fail(f"{type(exc).__name__}: {exc}")
            raise
        if failure is not None:
            self._fail(failure)
            return self.run_dir
        self._finish()
        return self.run_dir

    def _open_run_dir(self, resumed: bool, resume: bool) -> None:
        rd = self.run_dir
        rd.write_config(self.cfg.resolved())
        previous = rd.read_record()
        if resumed:
            self._truncate_metrics()
            rd.append_metrics({"kind": "event", "event": "resumed", "step": self.step, "time": utcnow()})
        elif rd.metrics_path.exists():
            rd.metrics_path.unlink()  # a fresh start must not mix with an earlier attempt's rows
        started = previous.started_at if (previous is not None and resumed) else utcnow()
        rd.update_record(
            run_id=rd.run_id, status="running", failure_reason=None, started_at=started, ended_at=None,
            provenance=provenance({"device": str(self.device), "seed": self.cfg.runtime.seed,
                                   "world_size": self.info.world_size, "resumed": resumed}),
        )
        if not resume:
            for name in (ckpt.LAST, ckpt.PREVIOUS, ckpt.BEST):
                (rd.checkpoints / name).unlink(missing_ok=True)

    def _truncate_metrics(self) -> None:
        """Drop rows logged after the checkpoint we resume from: they are about to be redone."""
        every = self.cfg.eval.every_n_epochs
        truncate_metrics_after(self.run_dir.metrics_path, self.step, expected_evals=self.epoch // every,
                               size_at_checkpoint=self.metrics_bytes)

    # ------------------------------------------------------------------------------------ loop

    def _loop(self) -> str | None:
        """Train until ``total_steps``; returns a failure reason or None."""
        if self.batch_in_epoch and (self.batch_in_epoch >= self.steps_per_epoch or self.step >= self.total_steps):
            # resumed from a step checkpoint written at an epoch's (or the run's) last step, before that epoch
            # ended: its evaluation and epoch checkpoint are still to do
            failure = self._end_epoch()
            if failure is not None:
                return failure
        while self.step < self.total_steps:
            if self.batch_in_epoch == 0:
                self.loader.set_epoch(self.epoch)
            self.method.set_epoch(self.epoch)
            for x, y in self.loader:
                failure = self._train_step(x, y)
                if failure is not None:
                    return failure
                if self.batch_in_epoch >= self.steps_per_epoch or self.step >= self.total_steps:
                    break
                self._stop_if_signalled()
            if self.batch_in_epoch < self.steps_per_epoch and self.step < self.total_steps:
                raise TrainingError(
                    f"the loader stopped after {self.batch_in_epoch} of {len(self.loader)} batches in epoch "
                    f"{self.epoch}: its __len__ and __iter__ disagree"
                )
            failure = self._end_epoch()
            if failure is not None:
                return failure
            if self.step < self.total_steps:  # a signal during the last step lets the run finish
                self._stop_if_signalled()
        return None

    def _train_step(self, x: Tensor, y: Tensor) -> str | None:
        out = self.stepper(x, y, self.cfg.optim.lr * self.schedule.factor(self.step))
        self.step += 1
        self.batch_in_epoch += 1
        self.samples_seen += int(x.shape[0]) * self.info.world_size
        self._accumulate(out.loss.detach(), out.metrics)
        failure = None
        if self.step % self.cfg.runtime.log_every_n_steps == 0:
            failure = self._log_train()
        if failure is None and self.ckpt_steps and self.step % self.ckpt_steps == 0:
            failure = self._check_finite()
            if failure is None:
                self._save_last()
        self._emit("step", model=self.raw)
        return failure

    def _stop_if_signalled(self) -> None:
        """Checkpoint at this step and raise `TrainingInterrupted` when a stop signal arrived.

        Single process: checked after every step. Distributed: every ``log_every_n_steps`` steps, with
        the ranks agreeing through one all-reduce (every rank must stop at the same step).
        """
        signum = self.stop.signum
        if self.info.enabled:
            if self.step % self.cfg.runtime.log_every_n_steps:
                return
            received = broadcast_flag(signum is not None, self.info, self.device)
            if not received:
                return
            signum = signum or int(signal.SIGTERM)
        elif signum is None:
            return
        self._save_last()
        self.meter.stop()
        if self.info.is_main:
            reason = f"{signal.Signals(signum).name} at step {self.step}; resumable from the checkpoint at this step"
            self.run_dir.append_metrics({"kind": "event", "event": "interrupted", "step": self.step,
                                         "signal": signal.Signals(signum).name, "time": utcnow()})
            self.run_dir.update_record(status="interrupted", failure_reason=reason, ended_at=utcnow())
        self._emit("interrupted", metrics={"step": self.step})
        raise TrainingInterrupted(signum, self.step, self.run_dir.path)

    def _accumulate(self, loss: Tensor, metrics: dict[str, Tensor]) -> None:
        self.epoch_loss += loss.double()
        self.epoch_batches += 1
        for key, value in {"loss": loss, **metrics}.items():
            v = value.detach().double() if isinstance(value, Tensor) else torch.tensor(float(value), dtype=torch.float64)
            self.sums[key] = self.sums.get(key, 0) + v.to(self.device)
        self.sums["n"] = self.sums.get("n", 0) + 1

    def _check_finite(self) -> str | None:
        bad = not bool(torch.isfinite(self.epoch_loss))
        bad = broadcast_flag(bad, self.info, self.device)
        if bad:
            return (
                f"non-finite training loss at step {self.step} (epoch {self.epoch}): lower optim.lr, set "
                "optim.grad_clip, or train in runtime.precision=fp32"
            )
        return None

    def _log_train(self) -> str | None:
        failure = self._check_finite()
        if not self.sums:
            return failure
        n = float(self.sums.pop("n"))
        row: dict[str, Any] = {key: float(value) / n for key, value in self.sums.items()}
        self.sums = {}
        row.update(kind="train", step=self.step, epoch=self.epoch, samples_seen=self.samples_seen,
                   lr=self.optimizer.param_groups[0]["lr"], seconds=self._seconds())
        if self.info.is_main:
            self.run_dir.append_metrics(row)
        return failure

    def _end_epoch(self) -> str | None:
        failure = self._log_train() if self.sums else self._check_finite()
        if failure is not None:
            return failure
        self._sync_buffers()
        train_loss = float(self.epoch_loss) / max(1, self.epoch_batches)
        finished_epoch = self.epoch
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_loss.zero_()
        self.epoch_batches = 0
        last = self.step >= self.total_steps
        if last or self.epoch % self.cfg.eval.every_n_epochs == 0:
            self._evaluate(finished_epoch, train_loss)
        if last or self.epoch % self.cfg.runtime.checkpoint_every_n_epochs == 0:
            self._save_last()
        return None

    def _sync_buffers(self) -> None:
        """Rank 0's BatchNorm running statistics on every rank (DDP syncs them before each forward only,
        so after the last step of an epoch each rank would hold its own)."""
        if self.info.enabled:
            for buffer in self.raw.buffers():
                torch.distributed.broadcast(buffer, src=0)

    # ------------------------------------------------------------------------------ evaluation

    def _eval_module(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.raw

    def _evaluate(self, epoch: int, train_loss: float) -> None:
        metrics: dict[str, Any] = {}
        if self.info.is_main:
            t0 = time.perf_counter()
            with self._autocast():
                metrics = evaluate_robustness(self._eval_module(), self.x_eval, self.y_eval, self.eval_settings)
            metrics.update(epoch=epoch, step=self.step, samples_seen=self.samples_seen, train_loss=train_loss,
                           eval_seconds=time.perf_counter() - t0, n_params=self.n_params)
            self.run_dir.append_metrics({"kind": "eval", **metrics})
            self.last_eval = metrics
            key = self.cfg.eval.select_best_on
            if not self.best or _is_better(metrics[key], self.best[key], key):
                self.best = dict(metrics)
                self._save_best()
            self.run_dir.update_record(final=_summary(metrics), best=_summary(self.best))
        barrier(self.info)
        self._emit("eval", metrics=metrics)

    # ---------------------------------------------------------------------------- checkpoints

    def _model_spec(self) -> dict[str, Any]:
        b = self.bundle
        return {"name": self.cfg.model.name, "kwargs": dict(self.cfg.model.kwargs), "num_classes": b.num_classes,
                "input_shape": list(b.input_shape), "mean": list(b.mean) if b.mean is not None else None,
                "std": list(b.std) if b.std is not None else None}

    def _save_best(self) -> None:
        payload = {"format": CHECKPOINT_FORMAT, "run_id": self.run_dir.run_id, "model_spec": self._model_spec(),
                   "model": self._eval_module().state_dict(), "metrics": dict(self.best)}
        ckpt.save_checkpoint(self.run_dir.checkpoints / ckpt.BEST, payload)

    def _local_state(self) -> dict[str, Any]:
        """What differs between ranks: attack RNG, loader shard position, global RNG states."""
        return {"method": self.method.state_dict(), "loader": self.loader.state_dict(), "rng": ckpt.rng_state()}

    def _gather_local_states(self) -> list[dict[str, Any]]:
        local = self._local_state()
        if not self.info.enabled:
            return [local]
        gathered: list[Any] = [None] * self.info.world_size
        torch.distributed.all_gather_object(gathered, local)
        return gathered

    def _save_last(self) -> None:
        per_rank = self._gather_local_states()
        if not self.info.is_main:
            barrier(self.info)
            return
        reading = self.meter.read()
        payload = {
            "format": CHECKPOINT_FORMAT,
            "run_id": self.run_dir.run_id,
            "model_spec": self._model_spec(),
            "model": self.raw.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "per_rank": per_rank,
            "progress": {
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "samples_seen": self.samples_seen, "world_size": self.info.world_size,
                "seconds": self.prior_seconds + reading.seconds,
                "joules": _add(self.prior_joules, reading.joules),
                "epoch_loss": self.epoch_loss.clone().cpu(), "epoch_batches": self.epoch_batches,
                "sums": {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in self.sums.items()},
                # where a resume cuts metrics.jsonl back to: rows after this point are redone
                "metrics_bytes": self.run_dir.metrics_path.stat().st_size if self.run_dir.metrics_path.exists() else 0,
            },
            "best": dict(self.best),
            "last_eval": dict(self.last_eval),
        }
        ckpt.save_last(self.run_dir.checkpoints, payload)
        barrier(self.info)

    def _restore(self) -> dict[str, Any] | None:
        """Load the newest usable checkpoint into every component; None if there is none."""
        payload = ckpt.load_latest(self.run_dir.checkpoints, map_location=self.device)
        if payload is None:
            return None
        progress = payload["progress"]
        if progress["world_size"] != self.info.world_size:
            raise TrainingError(
                f"checkpoint was written with {progress['world_size']} processes, this job has "
                f"{self.info.world_size}: resume with the same world size or use --no-resume"
            )
        self.raw.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.ema is not None and payload["ema"] is not None:
            self.ema.load_state_dict(payload["ema"])
        local = payload["per_rank"][self.info.rank]
        self.method.load_state_dict(local["method"])
        self.loader.load_state_dict(local["loader"])
        ckpt.set_rng_state(local["rng"])
        self.step, self.epoch = int(progress["step"]), int(progress["epoch"])
        self.batch_in_epoch, self.samples_seen = int(progress["batch_in_epoch"]), int(progress["samples_seen"])
        self.prior_seconds, self.prior_joules = float(progress["seconds"]), progress["joules"]
        self.epoch_loss = progress["epoch_loss"].to(self.device)
        self.epoch_batches = int(progress["epoch_batches"])
        self.sums = {k: (v.to(self.device) if isinstance(v, Tensor) else v) for k, v in progress["sums"].items()}
        self.best, self.last_eval = dict(payload["best"]), dict(payload["last_eval"])
        self.metrics_bytes = progress.get("metrics_bytes")  # None in checkpoints of older versions
        log.info("resumed %s at step %d (epoch %d)", self.run_dir.run_id, self.step, self.epoch)
        return payload

    # ------------------------------------------------------------------------------ finishing

    def _seconds(self) -> float:
        return self.prior_seconds + (time.perf_counter() - self.t_start)

    def _cost(self) -> dict[str, Any]:
        from robustperf.cost.accounting import run_cost, train_flops_per_sample

        reading = self.meter.stop()
        joules = _add(self.prior_joules, reading.joules)
        joules = all_reduce_sum(joules, self.info, self.device) if joules is not None else None
        seconds = self.prior_seconds + reading.seconds
        flops_per_sample = forward = float("nan")
        if self.cfg.cost.count_flops:
            shape = tuple(self.bundle.input_shape)
            fb = train_flops_per_sample(self.raw, self.cfg, input_shape=shape, num_classes=self.bundle.num_classes)
            flops_per_sample, forward = fb.per_sample, fb.forward_flops
        # per evaluated image: clean forward + PGD-k (2F per step, input gradients only) + adversarial forward
        n_evals = math.ceil(self.n_epochs / self.cfg.eval.every_n_epochs)
        eval_flops = forward * self.x_eval.shape[0] * (2 + 2 * self.eval_settings.n_steps) * n_evals
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        return run_cost(self.cfg.cost, seconds=seconds, samples_seen=self.samples_seen,
                        flops_per_sample=flops_per_sample, joules=joules, energy_source=reading.source,
                        n_gpus=self.info.world_size, peak_memory_bytes=peak, eval_flops=eval_flops)

    def _finish(self) -> None:
        cost = self._cost()
        if self.info.is_main:
            self.run_dir.update_record(status="finished", final=_summary(self.last_eval),
                                       best=_summary(self.best), cost=cost, ended_at=utcnow())
        barrier(self.info)
        self._emit("end", metrics=_summary(self.last_eval), model=self.raw)

    def _fail(self, reason: str) -> None:
        log.error("run %s failed: %s", self.run_dir.run_id, reason)
        if self.info.is_main:
            self.run_dir.append_metrics({"kind": "event", "event": "failed", "step": self.step, "reason": reason})
            self.run_dir.update_record(status="failed", failure_reason=reason, ended_at=utcnow())
        self._emit("failed", metrics={"step": self.step})

    def _emit(self, kind: str, metrics: dict[str, Any] | None = None, model: nn.Module | None = None) -> None:
        if self.callback is not None:
            self.callback(TrainEvent(kind, self.step, self.total_steps, self.epoch, self.samples_seen,
                                     dict(metrics or {}), model))


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("epoch", "step", "samples_seen", "clean_acc", "robust_acc", "adv_loss", "clean_loss", "train_loss",
            "n_params")
    return {k: metrics[k] for k in keys if k in metrics}


def _is_better(new: float, old: float, key: str) -> bool:
    """Strictly better (ties keep the earlier epoch)."""
    return new < old if key == "adv_loss" else new > old


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def load_run_model(run_dir: str | Path | RunDir, which: str = "best", device: str | torch.device = "cpu"):
    """The trained model of a run (EMA weights when the run used EMA) and its config.

    Args:
        run_dir: a run directory (or `RunDir`).
        which: "best" (selected on ``eval.select_best_on``) or "last".
        device: where to put the model.

    Returns:
        (model in eval mode, RunConfig).

    Raises:
        CheckpointError: the checkpoint is missing or corrupt.
    """
    from robustperf.config import config_from_dict
    from robustperf.models import create_model

    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if which not in ("best", "last"):
        raise TrainingError(f"which={which!r}: use 'best' or 'last'")
    cfg = config_from_dict(rd.read_config())
    payload: dict[str, Any] | None
    if which == "best":
        payload = ckpt.load_checkpoint(rd.checkpoints / ckpt.BEST)
        state = payload["model"]
    else:
        payload = ckpt.load_latest(rd.checkpoints)
        if payload is None:
            raise ckpt.CheckpointError(f"{rd.path} has no last checkpoint (was the run started?)")
        state = payload["ema"]["module"] if payload.get("ema") else payload["model"]
    spec = payload["model_spec"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], input_shape=tuple(spec["input_shape"]),
                         mean=None if spec["mean"] is None else tuple(spec["mean"]),
                         std=None if spec["std"] is None else tuple(spec["std"]), **spec["kwargs"])
    model.load_state_dict(state)
    return model.to(device).eval(), cfg


__all__ = ["StepRunner", "TrainEvent", "TrainingError", "autocast", "load_run_model", "train"]
