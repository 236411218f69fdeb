"""Robustness of an int8 model, and a trained run loaded for inference measurements.

`quantized_robustness` answers papers/004's "will AutoAttack work with quantized models?": an
int8 model has no autograd, so the white-box stages cannot run on it (flagged, not hidden);
its robust accuracy is bounded by the black-box Square attack run on it and by transferring
AutoAttack examples from the float model. The int8 model itself comes from
`robustperf.cost.inference.quantize_int8` (the inference benchmark measures its speed).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class QuantizedRobustness:
    """Accuracy and robust accuracy of a float model and its int8 copy (papers/004: "will AutoAttack work?").

    Attributes:
        n_examples, eps, norm: what was evaluated.
        clean_acc_float, clean_acc_int8: clean accuracy of each model.
        robust_acc_float: AutoAttack (``version``) on the float model.
        white_box_int8: None if gradient attacks ran on the int8 model, else why they cannot (no autograd).
        square_acc_int8: robust accuracy of the int8 model under black-box Square (forward queries only).
        transfer_acc_int8: robust accuracy of the int8 model on the float model's AutoAttack examples.
        robust_acc_int8: the lowest of the int8 numbers measured (an upper bound on its true robust accuracy).
        flags: name -> {fired, detail}: gradient masking signs of the int8 evaluation.
    """

    n_examples: int
    eps: float
    norm: str
    version: str
    clean_acc_float: float
    clean_acc_int8: float
    robust_acc_float: float
    white_box_int8: str | None
    square_acc_int8: float
    transfer_acc_int8: float
    robust_acc_int8: float
    flags: dict[str, dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch]).argmax(1) == y[i:i + batch] for i in range(0, len(x), batch)])


def quantized_robustness(
    model: torch.nn.Module,
    quantized: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    version: str = "standard",
    attacks: tuple[str, ...] = (),
    square_queries: int = 1000,
    attack_params: dict[str, dict[str, Any]] | None = None,
    batch_size: int = 256,
) -> QuantizedRobustness:
    """Clean and robust accuracy of ``model`` (float) and ``quantized`` (int8) on CPU, with masking flags.

    1. AutoAttack (``version``; ``attacks`` for version "custom") on the float model (the reference).
    2. A white-box gradient attack (APGD-CE) tried on the int8 model: quantised kernels have no autograd,
       so it raises; the reason is kept and the ``no_gradients`` flag fires (gradient masking by
       construction - a number from gradient attacks on it would be meaningless).
    3. Square (black-box, forward queries only) run on the int8 model itself.
    4. Transfer: the float model's AutoAttack examples classified by the int8 model.

    The int8 model's reported robust accuracy is the lower of 3 and 4 (each is an upper bound).
    """
    from robustperf.attacks import create_attack
    from robustperf.attacks.autoattack import AutoAttack

    t0 = time.perf_counter()
    model = copy.deepcopy(model).cpu().float().eval()
    x, y = x.cpu().float(), y.cpu()
    n = int(x.shape[0])
    aa = create_attack("autoattack", eps=eps, norm=norm, version=version, attacks=tuple(attacks),
                       attack_params=attack_params or {})
    assert isinstance(aa, AutoAttack)
    ref = aa.run(model, x, y, batch_size=batch_size)
    clean_q = _correct(quantized, x, y)
    white_box: str | None = None
    try:
        grad_attack = create_attack("apgd-ce", eps=eps, norm=norm)
        grad_attack.perturb(quantized, x[: min(n, 8)], y[: min(n, 8)])
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        white_box = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    square = create_attack("square", eps=eps, norm=norm, n_queries=square_queries).perturb(quantized, x, y)
    square_robust = clean_q & square.robust.cpu()
    transfer_robust = clean_q & _correct(quantized, ref.x_adv.cpu(), y)
    square_acc = float(square_robust.float().mean())
    transfer_acc = float(transfer_robust.float().mean())
    flags = {
        "no_gradients": {
            "fired": white_box is not None,
            "detail": ("white-box gradient attacks cannot run on the int8 model (" + white_box + "); its robust "
                       "accuracy comes from black-box Square and transfer from the float model only"
                       ) if white_box else "gradient attacks ran on the int8 model",
        },
        "int8_more_robust_than_float": {
            "fired": min(square_acc, transfer_acc) > float(ref.robust.float().mean()) + 0.02,
            "detail": "the int8 model looks more robust than the float one: the attacks it allows are weaker "
                      "(no gradients), not the model stronger - do not report it as a robustness gain",
        },
    }
    return QuantizedRobustness(
        n_examples=n, eps=eps, norm=norm, version=version,
        clean_acc_float=float(ref.clean_correct.float().mean()), clean_acc_int8=float(clean_q.float().mean()),
        robust_acc_float=float(ref.robust.float().mean()), white_box_int8=white_box,
        square_acc_int8=square_acc, transfer_acc_int8=transfer_acc, robust_acc_int8=min(square_acc, transfer_acc),
        flags=flags, seconds=time.perf_counter() - t0,
    )


def load_run_for_inference(
    run: Any, n_examples: int, *, n_calibration: int = 512
) -> tuple[torch.nn.Module, Any, list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A trained run's best model (CPU), its config, int8 calibration batches from its training images,
    and ``n_examples`` held-out test images with labels (the same seeded subset the training loop evaluates)."""
    from robustperf.data import build_data, eval_tensors
    from robustperf.models import load_run_model

    model, cfg = load_run_model(run, which="best", device="cpu")
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    x_cal, _ = eval_tensors(bundle.train, min(n_calibration, len(bundle.train)), seed=1)
    calibration = [x_cal[i:i + 128] for i in range(0, len(x_cal), 128)]
    return model, cfg, calibration, eval_tensors(bundle.test, n_examples, seed=0)


__all__ = ["QuantizedRobustness", "load_run_for_inference", "quantized_robustness"]
