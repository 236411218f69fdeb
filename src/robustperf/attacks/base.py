"""The attack protocol, its result, the registry and the call counter.

An attack is a frozen config dataclass, a class with one verb and a frozen result (STYLE.md):

    attack = create_attack("apgd-ce", eps=8 / 255, seed=0)      # construction does no work
    result = attack.perturb(model, x, y)                         # -> AttackResult
    result.x_adv      # (B, C, H, W), ||x_adv - x|| <= eps and 0 <= x_adv <= 1 per sample
    result.success    # (B,) bool: the model misclassifies x_adv, re-checked with a fresh fp32 forward

Contract (DESIGN.md): the eps-ball and the box hold for every sample, a point the model already gets wrong
counts as a success (so robust accuracy never exceeds clean accuracy), and the same seed gives the same
result. Each attack draws its randomness from its own `torch.Generator` seeded with `config.seed`; the
global RNG is never touched. Attacks never switch the model between train and eval mode; callers do.

Every attack attacks only the points the model classifies correctly, drops a point as soon as it is
misclassified, and may run its search in bf16 (`search_dtype="bf16"`); success and the final verdict are
always decided in fp32. Batching over data is left to callers (the evaluation module).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from robustperf.attacks.projections import check_norm
from robustperf.device import synchronize
from robustperf.registry import Registry

log = logging.getLogger(__name__)

SEARCH_DTYPES = ("fp32", "bf16")


class AttackConfigError(ValueError):
    """Raised for an invalid attack configuration; the message names the fix."""


@dataclass(frozen=True)
class AttackConfig:
    """Fields every attack shares.

    Attributes:
        eps: radius of the threat model in [0, 1] pixel units (8/255 is the CIFAR-10 linf standard).
        norm: "linf" or "l2".
        seed: seed of the attack's own torch.Generator.
        search_dtype: "fp32", or "bf16" to run the search under bf16 autocast (verdicts stay fp32).
    """

    eps: float = 8 / 255
    norm: str = "linf"
    seed: int = 0
    search_dtype: str = "fp32"

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise AttackConfigError(f"eps must be >= 0, got {self.eps}")
        try:
            check_norm(self.norm)
        except ValueError as e:
            raise AttackConfigError(str(e)) from None
        if self.search_dtype not in SEARCH_DTYPES:
            raise AttackConfigError(
                f"search_dtype must be one of {', '.join(SEARCH_DTYPES)}, got {self.search_dtype!r}"
            )


@dataclass(frozen=True)
class AttackResult:
    """What an attack returns.

    Attributes:
        x_adv: adversarial (or, where the attack failed, some in-ball) points, detached, shape of x.
        success: (B,) bool, True where the model misclassifies x_adv (fresh fp32 forward); True also for
            points that were misclassified before the attack.
        n_forward: images passed forward through the model (search passes + fp32 checks).
        n_backward: images passed backward (input-gradient computations).
        seconds: wall-clock time of `perturb`, CUDA synchronised.
        extras: attack-specific details (e.g. forward/backward call counts, per-point query counts).
    """

    x_adv: Tensor
    success: Tensor
    n_forward: int
    n_backward: int
    seconds: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def robust(self) -> Tensor:
        """(B,) bool, True where the point survived: the complement of `success`."""
        return ~self.success


@runtime_checkable
class Attack(Protocol):
    """Anything with a config and `perturb(model, x, y) -> AttackResult`."""

    config: AttackConfig

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackResult: ...


ATTACKS: Registry[type[BaseAttack]] = Registry("attack")


def create_attack(name: str, **params: Any) -> BaseAttack:
    """Build the attack registered as `name` from keyword parameters of its config.

    Raises:
        RegistryError: unknown name (the message lists the registered attacks).
        AttackConfigError: a parameter the attack does not accept, or an invalid value.
    """
    cls = ATTACKS.get(name)
    accepted = [f.name for f in dataclasses.fields(cls.config_cls)]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise AttackConfigError(
            f"attack {name!r} does not accept {', '.join(unknown)}; accepted parameters: {', '.join(accepted)}"
        )
    return cls(cls.config_cls(**params))


class ForwardCounter(nn.Module):
    """Wraps a model and counts forward and backward calls and images.

    A backward is counted when a gradient reaches the wrapped model's output (a hook on the output
    tensor), so `torch.autograd.grad` and `.backward()` both count. Train/eval mode passes through.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.reset()

    def reset(self) -> None:
        self.forward_calls = 0
        self.forward_images = 0
        self.backward_calls = 0
        self.backward_images = 0

    def forward(self, x: Tensor) -> Tensor:
        out = self.model(x)
        n = int(x.shape[0])
        self.forward_calls += 1
        self.forward_images += n
        if out.requires_grad:
            out.register_hook(self._backward_hook(n))
        return out

    def _backward_hook(self, n: int) -> Callable[[Tensor], None]:
        def hook(_: Tensor) -> None:
            self.backward_calls += 1
            self.backward_images += n

        return hook

    def counts(self) -> dict[str, int]:
        return {
            "forward_calls": self.forward_calls,
            "forward_images": self.forward_images,
            "backward_calls": self.backward_calls,
            "backward_images": self.backward_images,
        }


class SearchModel:
    """The model as the search sees it: counted, optionally under bf16 autocast, logits in fp32."""

    def __init__(self, counter: ForwardCounter, search_dtype: str = "fp32") -> None:
        self.counter = counter
        self.search_dtype = search_dtype

    def _autocast(self, x: Tensor) -> AbstractContextManager[Any]:
        if self.search_dtype == "bf16":
            return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def __call__(self, x: Tensor) -> Tensor:
        """Logits (fp32) with autograd enabled as the caller has it."""
        with self._autocast(x):
            out = self.counter(x)
        return out.float()

    def logits(self, x: Tensor) -> Tensor:
        """Logits (fp32) without autograd."""
        with torch.no_grad():
            return self(x)

    def verdict_logits(self, x: Tensor) -> Tensor:
        """Fresh fp32 logits without autograd: the only thing that decides success."""
        with torch.no_grad():
            return self.counter(x).float()


@dataclass
class AttackCall:
    """What one `perturb` call hands its attack. Per-call state lives here, never on the attack object,
    so one attack can serve many calls (and threads) and nothing of one call leaks into the next.

    Attributes:
        generator: RNG on the inputs' device, seeded with the attack's ``seed``.
        host_generator: CPU RNG with the same seed, for draws that must not sync the device.
        clean_logits: fp32 clean logits of the attacked points, (B, n_classes).
        extras: attack-specific details, returned in `AttackResult.extras`.
    """

    generator: torch.Generator
    host_generator: torch.Generator
    clean_logits: Tensor
    extras: dict[str, Any] = field(default_factory=dict)


class BaseAttack:
    """Shared `perturb`: clean check, attack only robust points, fp32 verdict, timing and counts.

    Subclasses set `config_cls` and implement `_attack(model, x, y, call)` on points the model
    classifies correctly; `call` is the `AttackCall` of this `perturb` (RNGs, clean logits, extras).
    """

    config_cls: ClassVar[type[AttackConfig]] = AttackConfig

    def __init__(self, config: AttackConfig | None = None) -> None:
        config = config if config is not None else self.config_cls()
        if not isinstance(config, self.config_cls):
            raise AttackConfigError(
                f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}"
            )
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> AttackResult:
        """Attack `model` at points `x` (B, C, H, W) in [0, 1] with labels `y` (B,)."""
        if x.shape[0] != y.shape[0]:
            raise AttackConfigError(f"x has {x.shape[0]} points but y has {y.shape[0]} labels")
        if not x.is_floating_point() or y.dtype != torch.long:
            raise AttackConfigError(f"need float images in [0, 1] and int64 labels, got {x.dtype} and {y.dtype}")
        synchronize(x.device)
        t0 = time.perf_counter()
        counter = ForwardCounter(model)
        search = SearchModel(counter, self.config.search_dtype)
        x = x.detach()
        clean_logits = search.verdict_logits(x)
        idx = (clean_logits.argmax(1) == y).nonzero().squeeze(1)  # only points still robust are attacked
        x_adv = x.clone()
        success = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        call = AttackCall(torch.Generator(device=x.device).manual_seed(self.config.seed),
                          torch.Generator().manual_seed(self.config.seed), clean_logits[idx])
        if idx.numel() > 0:
            x_adv[idx] = self._attack(search, x[idx], y[idx], call).detach()
            success[idx] = search.verdict_logits(x_adv[idx]).argmax(1) != y[idx]
        synchronize(x.device)
        seconds = time.perf_counter() - t0
        extras: dict[str, Any] = {**call.extras, **counter.counts(), "n_attacked": int(idx.numel())}
        return AttackResult(x_adv, success, counter.forward_images, counter.backward_images, seconds, extras)

    def _attack(self, model: SearchModel, x: Tensor, y: Tensor, call: AttackCall) -> Tensor:
        raise NotImplementedError
