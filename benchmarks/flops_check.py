"""FLOP counts of robustperf's counter next to the references (REFERENCE.md section 3) and torch's stock counter.

For each architecture: forward GFLOPs per 32x32 image, parameters, f_arch (FLOPs per parameter
per sample), counted forward-pass equivalents of standard / PGD-10 / TRADES-10 training, the
ratio of 27 x f_arch to Bartoldson's 7822, the wall time of counting (meta device), and whether
torch's stock ``FlopCounterMode`` survives a PGD step (``autograd.grad`` w.r.t. the input).
CPU only; writes ``benchmarks/results/flops_check.json``.

Usage::

    python benchmarks/flops_check.py
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from robustperf.config import RunConfig
from robustperf.cost import analytic
from robustperf.cost.accounting import train_flops_per_sample
from robustperf.cost.flops import count_flops, meta_copy
from robustperf.training.methods import flop_iteration

log = logging.getLogger("flops_check")

ARCHS: list[tuple[str, dict[str, Any]]] = [
    ("wide_resnet", {"depth": 28, "width": 10}),
    ("wide_resnet", {"depth": 34, "width": 10}),
    ("wide_resnet", {"depth": 34, "width": 20}),
    ("wide_resnet", {"depth": 70, "width": 16}),
    ("resnet18", {}),
    ("preact_resnet18", {}),
    ("timm", {"model_name": "vit_tiny_patch16_224", "img_size": 32}),
    # Patch-4 / patch-2 ViTs for CIFAR: timm directly (robustperf's timm adapter takes no patch_size).
    ("timm-direct", {"model_name": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 4}),
    ("timm-direct", {"model_name": "vit_small_patch16_224", "img_size": 32, "patch_size": 4}),
    ("timm-direct", {"model_name": "vit_base_patch16_224", "img_size": 32, "patch_size": 4}),
    ("timm-direct", {"model_name": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 2}),
    ("timm-direct", {"model_name": "vit_small_patch16_224", "img_size": 32, "patch_size": 2}),
]


def build(name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    if name == "timm-direct":
        import timm

        args = dict(kwargs)
        return timm.create_model(args.pop("model_name"), num_classes=10, pretrained=False, **args)
    from robustperf.models import create_model

    return create_model(name, num_classes=10, **kwargs)


def stock_counter_on_pgd_step(model: torch.nn.Module) -> str:
    """Run torch's FlopCounterMode on one input-gradient step; report what happens."""
    meta = meta_copy(model).eval()
    x = torch.empty(2, 3, 32, 32, device="meta", requires_grad=True)
    try:
        with FlopCounterMode(display=False) as mode:
            torch.autograd.grad(meta(x).sum(), x)
    except Exception as exc:  # noqa: BLE001 - we report whatever the stock counter does
        return f"fails: {type(exc).__name__}: {str(exc)[:120]}"
    ours = count_flops(lambda: torch.autograd.grad(meta(x).sum(), x)).total
    return f"ok, ratio to ours {mode.get_total_flops() / ours:.4f}"


def measure(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    with torch.device("meta"):
        model = build(name, kwargs)
    n_params = sum(p.numel() for p in model.parameters())
    row: dict[str, Any] = {"model": name, "kwargs": kwargs, "n_params": n_params}
    for method, k in (("standard", 0), ("pgd_at", 10), ("trades", 10)):
        cfg = RunConfig().with_overrides({"method.name": method, "method.attack.n_steps": k})
        t0 = time.perf_counter()
        b = train_flops_per_sample(model, cfg, flop_iteration(cfg.method), input_shape=(3, 32, 32))
        row[f"passes_{method}"] = b.passes
        row[f"count_seconds_{method}"] = time.perf_counter() - t0
        row["forward_gflops"] = b.forward_flops / 1e9
    f = analytic.f_arch(row["forward_gflops"] * 1e9, n_params)
    row["f_arch"] = f
    row["ratio_27f_to_7822"] = 27 * f / analytic.BARTOLDSON_FLOPS_PER_PARAM_SAMPLE.value
    row["stock_counter_pgd_step"] = stock_counter_on_pgd_step(model)
    return row


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    for name, kwargs in ARCHS:
        try:
            row = measure(name, kwargs)
        except Exception as exc:  # noqa: BLE001 - one missing model should not stop the table
            log.warning("%s %s: %s", name, kwargs, exc)
            continue
        rows.append(row)
        log.info(
            "%-16s %-60s %8.3f GFLOPs %6.1fM params f_arch %6.1f  std %.3f  pgd10 %.3f  trades10 %.3f  "
            "27f/7822 %.4f  stock: %s",
            name,
            json.dumps(kwargs),
            row["forward_gflops"],
            row["n_params"] / 1e6,
            row["f_arch"],
            row["passes_standard"],
            row["passes_pgd_at"],
            row["passes_trades"],
            row["ratio_27f_to_7822"],
            row["stock_counter_pgd_step"],
        )
    out = Path(__file__).parent / "results" / "flops_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "device": "meta (CPU host)",
    }
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
