"""`evaluate_run`: attack a trained run's checkpoint on its held-out data and record the result in the run.

The one way an evaluation reads a run and writes into it, for the study's post-training evaluation
(`robustperf.sweep.run_steps`) and ``robustperf evaluate`` (`robustperf.cli.evaluate`): the model comes from
the run's checkpoint (`models.load_run_model`), the points from its data set (`data.eval_tensors`), the threat
model defaults to the run's own evaluation threat model (`RunConfig.eval_threat`: the training eps and norm unless the config asked another eval.attack.eps), and
the summary goes into ``result.json`` under ``evaluations[key]``. The caller owns the run while it runs
(`robustperf.store.owner.owned_run`, ``what="evaluated"``); in a sharded evaluation rank 0 alone writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustperf.store import RunDir

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from robustperf.attacks.sharding import Shard
    from robustperf.config import RunConfig
    from robustperf.evaluation.evaluate import EvalResult


@dataclass(frozen=True)
class RunEvaluation:
    """What `evaluate_run` measured on one run.

    Attributes:
        run_dir: the evaluated run.
        key: its name under ``evaluations`` in result.json (and of its files).
        config: the run's config.
        result: the evaluation's result.
        x, y: the held-out points attacked, (N, C, H, W) in [0, 1] and (N,).
        device: where the model ran.
        seconds: wall time of the attack.
        files: files written into the run's evaluations directory (``save_files``), by name.
        summary: its entry in result.json's ``evaluations`` (on every rank; rank 0 wrote it).
    """

    run_dir: RunDir
    key: str
    config: RunConfig
    result: EvalResult
    x: Tensor
    y: Tensor
    device: torch.device
    seconds: float
    files: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def evaluation_name(attack: str, version: str, norm: str, eps: float, n_examples: int, which: str) -> str:
    """File-name-safe key of an evaluation, e.g. "autoattack-standard-linf-eps0.03137-n1000-best"."""
    kind = f"{attack}-{version}" if attack == "autoattack" else attack
    return f"{kind}-{norm}-eps{eps:.4g}-n{n_examples}-{which}"


def evaluate_run(
    run_dir: str | Path | RunDir,
    *,
    attack: str | list[str],
    which: str = "best",
    n_examples: int | None = 1000,
    key: str | None = None,
    eps: float | None = None,
    norm: str | None = None,
    version: str = "standard",
    data_seed: int = 0,
    device: str = "auto",
    device_setting: str = "device",
    shard: Shard | None = None,
    local_rank: int | None = None,
    state_suffix: str = "",
    save_files: bool = False,
    announce: Callable[[str, torch.device], None] | None = None,
    entry: Callable[[RunEvaluation], Mapping[str, Any]] | None = None,
    **options: Any,
) -> RunEvaluation:
    """Evaluate a trained run's checkpoint and store the summary in its record.

    Args:
        run_dir: the run directory.
        attack: an attack name ("autoattack", "pgd", ...) or several run in turn.
        which: the checkpoint, "best" or "last".
        n_examples: held-out points (the fixed subset ``eval_tensors`` draws with ``data_seed``); None: all.
        key: the evaluation's name under ``evaluations``; None: `evaluation_name` of its settings.
        eps, norm: the threat model; None: the run's own (`RunConfig.eval_threat_at`).
        version: AutoAttack's version.
        data_seed: seed of the held-out subset (0: the one the training engine evaluates on).
        device: "auto", "cpu", "cuda", "cuda:N"; ``device_setting`` names it in an error.
        shard: the ranks of a sharded evaluation split the attack batches; rank 0 alone writes.
        local_rank: the GPU of this process (default: the shard's rank, else 0).
        state_suffix: the evaluation's resumable state is ``<key><state_suffix>`` in the evaluations directory.
        save_files: also write ``<key>.json`` and ``<key>.npz`` (`save_result`) into the evaluations directory.
        announce: called with (key, device) once the run is loaded, before the attack starts.
        entry: what goes into result.json: the run's evaluation -> its entry (default: the result's summary).
        **options: passed to `robustperf.evaluation.evaluate` (``batch_size``, ``seed``, ``search_dtype``,
            ``save_outputs``, ``on_batch``...).

    Raises:
        FileNotFoundError: not a run directory. CheckpointError: no loadable checkpoint.
    """
    from robustperf.data import build_data, eval_tensors
    from robustperf.device import resolve_device
    from robustperf.evaluation.evaluate import evaluate, save_result
    from robustperf.models import load_run_model

    rd = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    rank = local_rank if local_rank is not None else (shard.rank if shard is not None else 0)
    dev = resolve_device(device, local_rank=rank, setting=device_setting)
    model, cfg = load_run_model(rd.path, which=which, device=dev)
    threat = cfg.eval_threat_at(eps)  # the run's evaluation threat model by default (the one eps rule)
    eps, norm = threat.eps, norm or threat.norm
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    x, y = eval_tensors(bundle.test, n_examples, seed=data_seed)
    name = key if key is not None else evaluation_name(str(attack), version, norm, eps, int(x.shape[0]), which)
    if announce is not None:
        announce(name, dev)
    start = time.perf_counter()
    result = evaluate(model, x, y, attack=attack, eps=eps, norm=norm, version=version, device=dev, shard=shard,
                      out_dir=rd.evaluations_dir / f"{name}{state_suffix}", **options)
    seconds = time.perf_counter() - start
    main = shard is None or shard.rank == 0
    files: list[str] = []
    if main and save_files:
        files = [path.name for path in save_result(result, rd.evaluations_dir, x, y, stem=name)]
    ev = RunEvaluation(rd, name, cfg, result, x, y, dev, seconds, files)
    ev = replace(ev, summary=dict(entry(ev) if entry is not None else result.summary()))
    if main:
        rd.update_record(evaluations={name: ev.summary})
    return ev


__all__ = ["RunEvaluation", "evaluate_run", "evaluation_name"]
