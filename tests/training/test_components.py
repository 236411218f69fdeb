"""Schedules, optimiser groups, EMA, checkpoints (atomic, corrupt fallback), RNG state, DDP env parsing."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch
from torch import nn

from robustperf.config import OptimConfig
from robustperf.store import checkpoint as ckpt
from robustperf.training.distributed import DistInfo, dist_info_from_env
from robustperf.training.ema import EMA
from robustperf.training.optim import build_optimizer
from robustperf.training.schedules import LRSchedule, ScheduleError


def test_cosine_with_warmup() -> None:
    s = LRSchedule("cosine", total_steps=100, warmup_steps=10)
    assert s.factor(0) == pytest.approx(0.1)
    assert s.factor(9) == pytest.approx(1.0)
    assert s.factor(10) == pytest.approx(1.0)
    assert s.factor(55) == pytest.approx(0.5)
    assert s.factor(99) < 0.01
    assert all(s.factor(i) >= s.factor(i + 1) for i in range(10, 99))


def test_piecewise_onecycle_constant() -> None:
    p = LRSchedule("piecewise", total_steps=100, milestones=(0.5, 0.75))
    assert [p.factor(i) for i in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    o = LRSchedule("onecycle", total_steps=100, warmup_steps=20)
    assert o.factor(19) == pytest.approx(1.0)
    assert o.factor(0) < 0.1 and o.factor(99) < 0.02
    assert LRSchedule("constant", total_steps=5).factor(4) == 1.0
    with pytest.raises(ScheduleError, match="fractions"):
        LRSchedule("piecewise", total_steps=10, milestones=(50,))


def test_no_weight_decay_on_norm_and_bias() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 2))
    opt = build_optimizer(model, OptimConfig(weight_decay=5e-4, no_decay_on_norm=True))
    decayed, free = opt.param_groups
    assert decayed["weight_decay"] == 5e-4 and free["weight_decay"] == 0.0
    assert {p.ndim for p in decayed["params"]} == {2, 4}
    assert len(free["params"]) == 4  # conv bias, bn weight/bias, linear bias
    assert opt.defaults["nesterov"]
    one = build_optimizer(model, OptimConfig(no_decay_on_norm=False, optimizer="adamw"))
    assert isinstance(one, torch.optim.AdamW) and len(one.param_groups) == 1


def test_ema_warmup_then_decay() -> None:
    model = nn.Linear(2, 1)
    ema = EMA(model, decay=0.9, warmup_steps=1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # warm-up: exact copy
    assert torch.equal(ema.module.weight, model.weight)
    with torch.no_grad():
        model.weight.fill_(2.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, torch.full_like(model.weight, 1.1))
    state = ema.state_dict()
    other = EMA(nn.Linear(2, 1), decay=0.9)
    other.load_state_dict(state)
    assert other.n_updates == 2 and torch.equal(other.module.weight, ema.module.weight)


def payload(value: float) -> dict:
    return {"format": 1, "model": {"w": torch.full((3,), value)}, "progress": {"step": int(value)}}


def test_save_last_keeps_previous_and_falls_back_on_corruption(tmp_path, caplog) -> None:
    ckpt.save_last(tmp_path, payload(1))
    ckpt.save_last(tmp_path, payload(2))
    assert ckpt.load_latest(tmp_path)["progress"]["step"] == 2
    data = (tmp_path / ckpt.LAST).read_bytes()
    (tmp_path / ckpt.LAST).write_bytes(data[: len(data) // 2])  # truncated by a crash / full disk
    with caplog.at_level(logging.ERROR):
        loaded = ckpt.load_latest(tmp_path)
    assert loaded["progress"]["step"] == 1
    assert "corrupt" in caplog.text and "last.pt" in caplog.text
    with pytest.raises(ckpt.CheckpointError, match="corrupt"):
        ckpt.load_checkpoint(tmp_path / ckpt.LAST)


def test_all_checkpoints_corrupt_is_a_clear_error(tmp_path) -> None:
    ckpt.save_last(tmp_path, payload(1))
    ckpt.save_last(tmp_path, payload(2))
    for name in (ckpt.LAST, ckpt.PREVIOUS):
        (tmp_path / name).write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="--no-resume"):
        ckpt.load_latest(tmp_path)
    assert ckpt.load_latest(tmp_path / "empty") is None


def test_checkpoints_refuse_pickled_objects(tmp_path) -> None:
    torch.save({"format": 1, "obj": DistInfo()}, tmp_path / "x.pt")
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_checkpoint(tmp_path / "x.pt")


def test_rng_state_round_trip(tmp_path) -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    state = ckpt.rng_state()
    ckpt.save_checkpoint(tmp_path / "r.pt", {"format": 1, "rng": state})
    expected = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    ckpt.set_rng_state(ckpt.load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2] == got[2] and expected[3] == got[3]


def test_dist_info_from_env() -> None:
    assert dist_info_from_env({}) == DistInfo()
    assert dist_info_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == DistInfo(1, 2, 1)
    slurm = dist_info_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1"})
    assert slurm == DistInfo(3, 4, 1) and slurm.enabled and not slurm.is_main


def test_eval_settings_follow_training_eps() -> None:
    from robustperf.config import RunConfig
    from robustperf.training.evaluation import eval_settings

    s = eval_settings(RunConfig().with_overrides(["method.attack.eps=0.1"]))
    assert s.eps == 0.1 and s.step_size == pytest.approx(0.025)  # eval keeps step = eps / 4 (2/255 at 8/255)
    assert (s.n_steps, s.loss) == (40, "cw")
    default = eval_settings(RunConfig())
    assert default.eps == pytest.approx(8 / 255) and default.step_size == pytest.approx(2 / 255)


def test_evaluate_robustness_sanity() -> None:
    from robustperf.training.evaluation import EvalSettings, evaluate_robustness

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(40, 1, 4, 4), torch.randint(0, 3, (40,))
    zero = evaluate_robustness(model, x, y, EvalSettings(eps=0.0, step_size=0.0, n_steps=2, batch_size=16))
    assert zero["robust_acc"] == zero["clean_acc"]
    assert zero["adv_loss"] == pytest.approx(zero["clean_loss"], abs=1e-6)
    assert zero["adv_ce"] == pytest.approx(zero["clean_loss"], abs=1e-6)  # no perturbation: CE at x itself
    model.train()
    big = evaluate_robustness(model, x, y, EvalSettings(eps=0.5, step_size=0.1, n_steps=10, batch_size=16))
    assert model.training  # mode restored
    assert big["robust_acc"] < big["clean_acc"] == zero["clean_acc"]
    assert big["adv_loss"] > big["clean_loss"]
    assert big["adv_ce"] > big["clean_loss"]  # the CE PGD maximised
    again = evaluate_robustness(model, x, y, EvalSettings(eps=0.5, step_size=0.1, n_steps=10, batch_size=16))
    assert again == big  # seeded: the same numbers every epoch


def test_ema_default_warms_up_so_a_short_run_is_not_its_random_init() -> None:
    """Issue 15: decay 0.995 from step 0 leaves a 92-step average 63 % initialisation; the default ramp does not."""
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
    ramped, fixed = EMA(model, decay=0.995), EMA(model, decay=0.995, warmup_steps=0)
    assert [ramped.decay_at(t) for t in (0, 10, 1790, 10_000)] == [0.1, 11 / 20, 0.995, 0.995]
    with torch.no_grad():
        model.weight.fill_(1.0)  # training moved the weights to 1 at once
    for _ in range(92):
        ramped.update(model)
        fixed.update(model)
    assert fixed.module.weight.mean().item() == pytest.approx(1 - 0.995**92)  # 0.37: mostly the initial 0
    assert ramped.module.weight.mean().item() > 0.999
