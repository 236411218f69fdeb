"""StepRunner's phase hook: the profiler's seam into the loop's own step (update, attack, optimizer)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from robustperf.config import RunConfig
from robustperf.training.distributed import DistInfo
from robustperf.training.methods import StepOutput, TrainingMethod
from robustperf.training.methods.base import MethodSettings, cross_entropy
from robustperf.training.optim import build_optimizer
from robustperf.training.setup import build_parts, build_stepper
from robustperf.training.step import PHASES, StepRunner

CFG = {
    "data.dataset": "digits", "data.n_train": 64, "data.batch_size": 32, "model.name": "tiny_cnn",
    "model.kwargs": {"width": 4}, "method.name": "pgd_at", "method.attack.n_steps": 2, "method.attack.eps": 0.1,
    "method.attack.step_size": 0.05, "runtime.device": "cpu", "optim.ema_decay": 0.9, "optim.grad_clip": 1.0,
}


class Recorder:
    """A phase hook that logs enter/exit and counts the model's forward passes inside each open phase."""

    def __init__(self, model: nn.Module) -> None:
        self.events: list[str] = []
        self.open: list[str] = []
        self.forwards: dict[str, int] = {}
        model.register_forward_hook(self._forward)

    def _forward(self, *args: object) -> None:
        key = "/".join(self.open) or "-"
        self.forwards[key] = self.forwards.get(key, 0) + 1

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.events.append(f"+{name}")
        self.open.append(name)
        try:
            yield
        finally:
            self.open.remove(name)
            self.events.append(f"-{name}")


def _parts() -> tuple[RunConfig, object, list[tuple[Tensor, Tensor]]]:
    cfg = RunConfig().with_overrides(CFG)
    parts = build_parts(cfg, DistInfo(), torch.device("cpu"))
    return cfg, parts, list(parts.loader)


def test_phases_wrap_the_attack_the_update_and_the_optimizer_step() -> None:
    cfg, parts, batches = _parts()
    rec = Recorder(parts.raw)
    parts.stepper(*batches[0], cfg.optim.lr, phase=rec)
    assert rec.events == ["+update", "+attack", "-attack", "-update", "+optimizer", "-optimizer"]
    assert set(PHASES) == {e[1:] for e in rec.events}
    # PGD-2: two input-gradient forwards inside the attack, the outer loss's forward after it
    assert rec.forwards == {"update/attack": 2, "update": 1}
    assert parts.ema.n_updates == 1  # the EMA update ran (inside the optimizer phase)


def test_standard_training_has_an_empty_attack_phase() -> None:
    cfg = RunConfig().with_overrides({**CFG, "method.name": "standard"})
    parts = build_parts(cfg, DistInfo(), torch.device("cpu"))
    rec = Recorder(parts.raw)
    parts.stepper(*next(iter(parts.loader)), cfg.optim.lr, phase=rec)
    assert rec.forwards == {"update": 1}
    assert rec.events[:3] == ["+update", "+attack", "-attack"]


def test_the_hook_does_not_change_the_step() -> None:
    cfg, parts, batches = _parts()
    init = copy.deepcopy(parts.raw.state_dict())
    twin = build_stepper(cfg, _copy_of(parts.raw, init), torch.device("cpu"))
    for x, y in batches:
        parts.stepper(x, y, 0.05, phase=Recorder(parts.raw))
        twin(x, y, 0.05)
    for a, b in zip(parts.raw.state_dict().values(), twin.raw.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert parts.optimizer.param_groups[0]["lr"] == 0.05  # set_lr ran


class OldStyleMethod(TrainingMethod):
    """A plug-in written to the bare ``step(model, x, y)`` contract, without ``on_attack_done``."""

    def step(self, model: nn.Module, x: Tensor, y: Tensor) -> StepOutput:  # type: ignore[override]
        logits = model(x)
        return StepOutput(loss=cross_entropy(logits, y), logits=logits, adv_logits=None)


def test_without_a_hook_the_method_is_called_as_before() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    runner = StepRunner(OldStyleMethod(MethodSettings()), model, model, build_optimizer(model, RunConfig().optim))
    out = runner(torch.rand(2, 1, 2, 2), torch.tensor([0, 2]), 0.1)
    assert torch.isfinite(out.loss)


def _copy_of(model: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    twin = copy.deepcopy(model)
    twin.load_state_dict(state)
    return twin
