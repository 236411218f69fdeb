"""Free AT (minibatch replays) and FGSM without projection; the catastrophic-overfitting watch;
method.kwargs; counted FLOPs of both methods against the analytic table."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from robustperf.config import MethodConfig, RunConfig
from robustperf.cost import accounting, analytic
from robustperf.cost.flops import forward_flops
from robustperf.training import TrainEvent, load_run_model, train
from robustperf.training.evaluation import CO_PGD_DROP, catastrophic_overfitting, eval_settings
from robustperf.training.methods import MethodConfigError, create_method, flop_iteration

from .test_loop import make_cfg
from .test_methods import EPS, batch, small_net

ATTACK = {"eps": EPS, "step_size": 0.03, "n_steps": 3}


def make(name: str, **kwargs: object) -> object:
    cfg = MethodConfig(name=name, attack=ATTACK, kwargs=kwargs)
    return create_method(cfg, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------------------------------- free AT


@pytest.mark.parametrize(("epochs", "replays"), [(4, 2), (6, 3), (3, 1)])
def test_free_at_replays_keep_the_papers_weight_updates(tmp_path: Path, epochs: int, replays: int) -> None:
    """Shafahi et al. 2019: every minibatch is replayed m times (m weight updates per minibatch), and the
    run passes over the data N/m times, so the weight updates of the whole run equal natural training's."""
    updates_by_epoch: Counter[int] = Counter()
    updates = 0  # optimiser steps since the previous step event (one event per minibatch)

    def count(*_: object) -> None:
        nonlocal updates
        updates += 1

    def on_event(e: TrainEvent) -> None:
        nonlocal updates
        if e.kind == "step":
            updates_by_epoch[e.epoch] += updates
            updates = 0

    handle = register_optimizer_step_post_hook(count)
    try:
        cfg = make_cfg(method__name="free_at", method__kwargs={"replays": replays}, optim__epochs=epochs,
                       data__n_train=128, eval__every_n_epochs=100)
        run = train(cfg, tmp_path, callback=on_event)
    finally:
        handle.remove()
    batches_per_epoch = 128 // 32
    passes = math.ceil(epochs / replays)
    assert sorted(updates_by_epoch) == list(range(passes))  # N/m passes over the data
    assert all(n == replays * batches_per_epoch for n in updates_by_epoch.values())  # m x batches per epoch
    assert sum(updates_by_epoch.values()) == epochs * batches_per_epoch  # as natural training for N epochs
    record = json.loads((run.path / "result.json").read_text())
    assert record["status"] == "finished"
    assert record["cost"]["samples_seen"] == passes * 128
    assert record["cost"]["flops_per_sample"] > 0


def test_free_at_moves_delta_by_eps_sign_steps_inside_the_ball_and_carries_it() -> None:
    model, (x, y) = small_net(), batch()
    method = make("free_at", replays=4)
    deltas = []
    for _ in range(3):
        out = method.step(model, x, y)
        model.zero_grad()
        out.loss.backward()
        grad = method._leaf.grad.clone()
        start = method._leaf.detach().clone()
        method.after_backward(model)
        deltas.append(method._delta.clone())
        # one sign step of size eps from where this replay started, clipped to the eps ball
        assert torch.equal(deltas[-1], (start + EPS * grad.sign()).clamp(-EPS, EPS))
    assert deltas[0].abs().max() == pytest.approx(EPS)
    assert all(d.abs().max() <= EPS + 1e-7 for d in deltas)
    assert not torch.equal(deltas[0], deltas[1])  # carried and moved, not restarted
    # the next (smaller) minibatch starts from the carried perturbation
    out = method.step(model, x[:10], y[:10])
    assert torch.equal(method._leaf.detach(), deltas[-1][:10])
    # and the weights got a gradient from the same backward pass
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_free_at_state_round_trips_the_carried_delta() -> None:
    model, (x, y) = small_net(), batch()
    method = make("free_at", replays=2)
    out = method.step(model, x, y)
    out.loss.backward()
    method.after_backward(model)
    state = method.state_dict()
    fresh = make("free_at", replays=2)
    fresh.load_state_dict(state)
    fresh.step(model, x, y)
    assert torch.equal(fresh._leaf.detach(), method._delta)


def test_free_at_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """A run interrupted mid-way (delta carried in the checkpoint) reaches the weights of an uninterrupted one."""
    cfg = make_cfg(method__name="free_at", method__kwargs={"replays": 2}, optim__epochs=4, data__n_train=128,
                   runtime__deterministic=True)

    class Stop(BaseException):
        pass

    def stop_at(e: TrainEvent) -> None:
        if e.kind == "step" and e.step == 5:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, tmp_path / "a", callback=stop_at, checkpoint_every_n_steps=1)
    finals: list[nn.Module] = []
    train(cfg, tmp_path / "a", callback=lambda e: finals.append(e.model) if e.kind == "end" else None)
    train(cfg, tmp_path / "b", callback=lambda e: finals.append(e.model) if e.kind == "end" else None)
    a, b = (m.state_dict() for m in finals)
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------- FGSM without projection


def test_fgsm_noproj_is_not_projected_onto_the_eps_ball() -> None:
    model, (x, y) = small_net(), batch()
    x_adv, _ = make("fgsm_noproj").perturb(model, x, y)
    dist = (x_adv - x).abs()
    assert dist.max() > EPS + 1e-3  # noise (2 eps) plus a step (eps): outside the eps ball
    assert dist.max() <= 3 * EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(p.grad is None for p in model.parameters())
    projected, _ = make("fast_at").perturb(model, x, y)
    assert (projected - x).abs().max() <= EPS + 1e-6
    again, _ = make("fgsm_noproj").perturb(model, x, y)
    assert torch.equal(x_adv, again)  # seeded noise


def test_fgsm_noproj_kwargs_set_noise_and_step() -> None:
    model, (x, y) = small_net(), batch()
    x_adv, _ = make("fgsm_noproj", noise_ratio=0.0, step_ratio=1.0).perturb(model, x, y)
    # no noise, one step of eps: every pixel not clipped at 0 or 1 moved by exactly eps
    moved = (x_adv - x).abs()
    inside = (x_adv > 0) & (x_adv < 1)
    assert torch.allclose(moved[inside], torch.full_like(moved[inside], EPS), atol=1e-6)


# ------------------------------------------------------------------------------------ method.kwargs


def test_misspelled_method_kwarg_names_the_valid_ones() -> None:
    with pytest.raises(MethodConfigError, match="replays"):
        make("free_at", replay=4)
    with pytest.raises(MethodConfigError, match="none"):
        make("pgd_at", replays=4)
    with pytest.raises(MethodConfigError, match="replays >= 1"):
        make("free_at", replays=0)


def test_empty_method_kwargs_keep_run_ids() -> None:
    cfg = RunConfig()
    payload = cfg.resolved()
    assert payload["method"]["kwargs"] == {}
    assert cfg.with_overrides({"method.kwargs": {}}).run_id == cfg.run_id
    free = cfg.with_overrides({"method.name": "free_at"})
    assert free.with_overrides({"method.kwargs": {"replays": 4}}).run_id != free.run_id


# ------------------------------------------------------------------------------------ FLOPs vs analytic


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10),
    )


def first_conv_share() -> float:
    """The first conv's share of F: the input gradient a weight backward skips when x needs no gradient."""
    first = 2 * 3 * 9 * 16 * 8 * 8
    return first / (first + 2 * 16 * 9 * 16 * 8 * 8 + 2 * 64 * 10)


@pytest.mark.parametrize(
    ("method", "kwargs", "skipped"),
    [
        ("free_at", {}, 0.0),  # its backward needs the input gradient: nothing skipped, exactly 3m
        ("free_at", {"replays": 3}, 0.0),
        ("free_at", {"replays": 1}, 0.0),
        ("fgsm_noproj", {}, 1.0),  # the outer loss's weight backward skips the first conv's input gradient
        ("fgsm_noproj", {"noise_ratio": 1.0}, 1.0),
    ],
)
def test_counted_flops_equal_the_analytic_forward_equivalents(method: str, kwargs: dict, skipped: float) -> None:
    cfg = RunConfig().with_overrides({"method.name": method, "method.kwargs": kwargs})
    b = accounting.train_flops_per_sample(tiny_net(), cfg, flop_iteration(cfg.method), input_shape=(3, 8, 8))
    replays = kwargs.get("replays")
    assert b.analytic_passes == analytic.forward_equivalents(method, 1, replays=replays)
    assert b.passes == pytest.approx(b.analytic_passes - skipped * first_conv_share(), rel=1e-9)
    assert b.per_sample == pytest.approx(b.forward_flops * b.passes)


def test_analytic_free_at_is_natural_training_per_update() -> None:
    assert analytic.forward_equivalents("free_at", replays=8) == 24.0
    assert analytic.forward_equivalents("free_at") == 3.0 * analytic.FREE_AT_DEFAULT_REPLAYS
    assert analytic.forward_equivalents("free_at", replays=4) / 4 == analytic.forward_equivalents("standard", 0)
    assert analytic.forward_equivalents("fgsm_noproj", 10) == 5.0
    assert create_method(MethodConfig(name="free_at")).settings.replays == analytic.FREE_AT_DEFAULT_REPLAYS


# ------------------------------------------------------------------------------- catastrophic overfitting


def test_catastrophic_overfitting_is_pgd_collapsing_while_fgsm_rises() -> None:
    before = {"robust_acc": 0.45, "fgsm_acc": 0.50}
    assert catastrophic_overfitting(before, {"robust_acc": 0.02, "fgsm_acc": 0.80})
    assert not catastrophic_overfitting(before, {"robust_acc": 0.02, "fgsm_acc": 0.30})  # both fell: diverged
    assert not catastrophic_overfitting(before, {"robust_acc": 0.45 - CO_PGD_DROP / 2, "fgsm_acc": 0.9})
    assert not catastrophic_overfitting(before, {"robust_acc": 0.50, "fgsm_acc": 0.55})  # healthy progress
    assert not catastrophic_overfitting({}, {"robust_acc": 0.0, "fgsm_acc": 1.0})  # first evaluation
    assert not catastrophic_overfitting({"robust_acc": 0.4}, {"robust_acc": 0.0})  # no FGSM numbers


def test_only_single_step_methods_are_watched() -> None:
    for name, watched in [("fast_at", True), ("free_at", True), ("fgsm_noproj", True), ("pgd_at", False),
                          ("trades", False), ("standard", False)]:
        assert eval_settings(RunConfig().with_overrides({"method.name": name})).fgsm is watched, name
    # PGD-AT / TRADES with a single step are FGSM training (from zero init without random_start): watched
    for name, watched in [("pgd_at", True), ("trades", True), ("standard", False)]:
        one_step = {"method.name": name, "method.attack.n_steps": 1, "method.attack.random_start": False}
        assert eval_settings(RunConfig().with_overrides(one_step)).fgsm is watched, name


def test_single_step_runs_record_fgsm_accuracy_and_the_flag(tmp_path: Path) -> None:
    cfg = make_cfg(method__name="fgsm_noproj", optim__epochs=2, data__n_train=128)
    run = train(cfg, tmp_path)
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert len(evals) == 2
    assert all(0 <= r["fgsm_acc"] <= 1 and r["catastrophic_overfitting"] is False for r in evals)
    record = json.loads((run.path / "result.json").read_text())
    assert record["final"]["catastrophic_overfitting"] is False
    assert record["final"]["fgsm_acc"] == evals[-1]["fgsm_acc"]
    # 64 eval images x 2 evals x (clean + PGD-3 (2F a step) + scoring + FGSM step (2F) + scoring)
    forward = forward_flops(load_run_model(run.path, which="last")[0], (1, 8, 8))
    assert record["cost"]["eval_flops"] == pytest.approx(forward * 64 * 2 * (1 + 6 + 1 + 2 + 1))


def test_a_planned_free_at_run_costs_what_natural_training_costs() -> None:
    """`cost estimate` divides the planned data by m like the loop, so free AT for N epochs is priced like
    natural training for N epochs (3F per weight update; natural training skips the first conv's input
    gradient, so it is a little cheaper)."""
    from robustperf.cost.planning import estimate_run, planned_samples

    base = {"data.dataset": "digits", "model.name": "tiny_cnn", "optim.epochs": 8}
    free = RunConfig().with_overrides({**base, "method.name": "free_at", "method.kwargs": {"replays": 4}})
    std = RunConfig().with_overrides({**base, "method.name": "standard"})
    assert planned_samples(free, 1000)[0] == 2000 == planned_samples(std, 1000)[0] / 4
    assert planned_samples(RunConfig().with_overrides({**base, "method.name": "free_at"}), 1000)[0] == 1000
    priced = [estimate_run(c, flop_iteration(c.method), gpu="h100", mfu=0.4)["train_flops"] for c in (free, std)]
    assert priced[1] < priced[0] < 1.2 * priced[1]


def test_methods_list_shows_each_methods_kwargs() -> None:
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    result = CliRunner().invoke(app, ["methods", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "replays=8" in lines["free_at"] and "noise_ratio=2" in lines["fgsm_noproj"]
    assert "member_method='pgd_at'" in lines["ensemble"]
