"""Training throughput: robustperf's TRADES step vs a plain PyTorch loop, side by side in one process.

Workload (issue 2): TRADES-10 (beta 6, eps 8/255, step 2/255) on WRN-28-10, batch 512, 32x32 images.
Variants, all from the same initial weights on the same random batches:

- ``plain fp32``: a loop written the way public TRADES pipelines are (DM-Improves-AT style): model.eval()
  for a hand-written PGD with the clean probabilities computed once, model.train(), CE + beta * KL,
  fp32, no compile.
- ``plain bf16+cl``: the same loop under bf16 autocast with channels_last weights and inputs.
- ``robustperf``: `robustperf.training.step.StepRunner` - the loop body `train()` runs - with the
  "trades" method (bf16 + channels_last on CUDA, fp32 on CPU unless --precision says otherwise).

Printed per variant: images/s, model TFLOP/s (27 forward passes per image for TRADES-10 - 2k + 7,
REFERENCE.md section 3 - times the counted forward FLOPs of the model), share of the measured peak
(bf16 8192^3 matmul on CUDA; fp32 2048^3 matmul on CPU), peak memory, mean loss, and the ratio to the
plain fp32 loop. Variants run in interleaved rounds (A B C A B C ...) and the median round counts, so a
noisy shared machine penalises none of them in particular.

    python benchmarks/train_throughput.py                       # auto device, WRN-28-10, batch 512
    python benchmarks/train_throughput.py --tiny                # CPU: tiny CNN, batch 32
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from robustperf.config import MethodConfig
from robustperf.training.methods import create_method
from robustperf.training.optim import build_optimizer
from robustperf.training.step import StepRunner

EPS, STEP, K, BETA = 8 / 255, 2 / 255, 10, 6.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="tiny_cnn (width 16) and batch 32: for CPUs")
    p.add_argument("--model", default=None, help="registry name (default wide_resnet, tiny_cnn with --tiny)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per variant before timing")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="robustperf's variant")
    p.add_argument("--compile", action="store_true", help="torch.compile robustperf's model too")
    return p.parse_args()


def build_model(args: argparse.Namespace, device: torch.device) -> nn.Module:
    from robustperf.models import create_model

    if args.tiny or args.model == "tiny_cnn":
        return create_model("tiny_cnn", num_classes=10, input_shape=(3, 32, 32), width=16).to(device)
    name = args.model or "wide_resnet"
    kwargs = {"depth": 28, "width": 10} if name == "wide_resnet" else {}
    return create_model(name, num_classes=10, input_shape=(3, 32, 32), **kwargs).to(device)


# ------------------------------------------------------------------------------ the plain loop


def plain_trades_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One TRADES step as public pipelines write it (hand-written PGD, clean probabilities once)."""
    model.eval()
    with torch.no_grad():
        p_clean = F.softmax(model(x), dim=1)
    x_adv = (x + 0.001 * torch.randn_like(x)).detach()
    for _ in range(K):
        x_adv.requires_grad_(True)
        loss_kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), p_clean, reduction="sum")
        (grad,) = torch.autograd.grad(loss_kl, [x_adv])
        x_adv = x_adv.detach() + STEP * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0.0, 1.0)
    model.train()
    opt.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, y) + BETA * F.kl_div(
        F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean"
    )
    loss.backward()
    opt.step()
    return loss.detach()


def make_plain(model: nn.Module, bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    device = next(model.parameters()).device
    if bf16:
        model.to(memory_format=torch.channels_last)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return plain_trades_step(model, opt, x, y)

    return step


def make_robustperf(model: nn.Module, precision: str, compile_model: bool) -> Callable:
    from robustperf.config import OptimConfig

    channels_last = precision == "bf16"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fast = torch.compile(model) if compile_model else model
    device = next(model.parameters()).device
    cfg = MethodConfig(name="trades", beta=BETA, attack={"eps": EPS, "step_size": STEP, "n_steps": K})
    method = create_method(cfg, generator=torch.Generator(device=device).manual_seed(0))
    opt = build_optimizer(model, OptimConfig(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                                             no_decay_on_norm=False))
    runner = StepRunner(method, fast, model, opt, precision=precision, channels_last=channels_last)
    return lambda x, y: runner(x, y, 0.1).loss.detach()


# ------------------------------------------------------------------------------ measurement


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_peak(device: torch.device) -> tuple[float, str]:
    """Measured matmul FLOP/s: bf16 8192^3 on CUDA, fp32 2048^3 on CPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps, t0 = 10 if device.type == "cuda" else 3, time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0), f"{'bf16' if dtype == torch.bfloat16 else 'fp32'} {n}^3 matmul"


def run_round(step: Callable, batches: list, n_steps: int, device: torch.device) -> tuple[float, list[float]]:
    losses = []
    sync(device)
    t0 = time.perf_counter()
    for i in range(n_steps):
        x, y = batches[i % len(batches)]
        losses.append(step(x, y))
    sync(device)
    seconds = time.perf_counter() - t0
    return seconds, [float(v) for v in losses]


def main() -> None:
    args = parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    batch = args.batch_size or (32 if args.tiny else 512)
    n_steps = args.steps or (20 if device.type == "cpu" else 10)
    precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    torch.manual_seed(0)
    base = build_model(args, device)
    from robustperf.cost.flops import forward_flops

    fwd = forward_flops(base, (3, 32, 32))
    g = torch.Generator(device="cpu").manual_seed(0)
    batches = [(torch.rand(batch, 3, 32, 32, generator=g).to(device), torch.randint(0, 10, (batch,), generator=g).to(device))
               for _ in range(4)]
    variants = {
        "plain fp32": make_plain(copy.deepcopy(base), bf16=False),
        "plain bf16+cl": make_plain(copy.deepcopy(base), bf16=True),
        f"robustperf {precision}{'+cl' if precision == 'bf16' else ''}{'+compile' if args.compile else ''}":
            make_robustperf(copy.deepcopy(base), precision, args.compile),
    }
    if device.type == "cpu":  # bf16 autocast on CPUs without AMX is slow and not the comparison asked for
        variants.pop("plain bf16+cl")
    times: dict[str, list[float]] = {k: [] for k in variants}
    losses: dict[str, list[float]] = {k: [] for k in variants}
    memory: dict[str, int | None] = {}
    for name, step in variants.items():  # warm-up (cuDNN autotuning, compile) and peak memory
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        run_round(step, batches, args.warmup, device)
        memory[name] = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    for _ in range(args.rounds):
        for name, step in variants.items():
            seconds, ls = run_round(step, batches, n_steps, device)
            times[name].append(seconds)
            losses[name].extend(ls)
    peak, peak_name = measure_peak(device)
    report(args, device, batch, n_steps, fwd, peak, peak_name, times, losses, memory)


def report(args, device, batch, n_steps, fwd, peak, peak_name, times, losses, memory) -> None:  # noqa: ANN001
    passes = 2 * K + 7  # TRADES-10 with clean probabilities once: 27 forward-equivalents per image
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; model {'tiny_cnn' if args.tiny else (args.model or 'WRN-28-10')}, "
          f"forward {fwd / 1e9:.4g} GFLOPs/image; batch {batch}; {args.rounds} rounds x {n_steps} steps, median round")
    print(f"peak: {peak / 1e12:.3g} TFLOP/s ({peak_name}, measured)")
    print("| variant | img/s | model TFLOP/s | share of peak | peak memory GiB | mean loss | ratio vs plain fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = None
    for variant, ts in times.items():
        ips = batch * n_steps / statistics.median(ts)
        base = base or ips
        tflops = ips * passes * fwd / 1e12
        mem = f"{memory[variant] / 2**30:.2f}" if memory[variant] is not None else "-"
        print(f"| {variant} | {ips:,.1f} | {tflops:.3g} | {tflops * 1e12 / peak:.3f} | {mem} | "
              f"{statistics.fmean(losses[variant]):.4f} | {ips / base:.3f} |")


if __name__ == "__main__":
    main()
