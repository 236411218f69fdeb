"""AutoAttack speed: robustperf's cascade vs the reference (pyautoattack 0.2.0), in one process.

Same model, same points, same eps, same batch size, same seed; the reference runs
`AutoAttack(model, eps=..., version="standard").run_standard_evaluation(x, y, batch_size=...)`, robustperf
runs `robustperf.attacks.autoattack.AutoAttack(...).run(model, x, y, batch_size=...)`. Printed: per-attack
and total seconds, robust accuracy after each attack, agreement of the per-point robust flags, and the
images passed forward/backward through the model (a `ForwardCounter` wrapped around it for both).

Models:
  --model mlp        an MLP made robust in-process (PGD-AT, a few seconds) on scikit-learn's digits
  --model wrn        a small WideResNet (--depth/--width) made robust in-process on digits resized to
                     --size x --size x 3 (32: the REFERENCE.md section 6 setting, scaled down)
  --run-dir RUN      a run trained by `robustperf train` (its best checkpoint and held-out data)

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/autoattack_speed.py --model mlp --n-examples 397 \
        --eps 0.1 [--out benchmarks/results/autoattack_speed_cpu.md]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustperf.attacks import pgd_perturb
from robustperf.attacks.autoattack import AutoAttack, AutoAttackConfig
from robustperf.attacks.base import ForwardCounter
from robustperf.device import synchronize

log = logging.getLogger("autoattack_speed")


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------


def digits(size: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn digits in [0, 1]: (x_train, y_train, x_test, y_test); with `size`, RGB size x size."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    if size is not None:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False).clamp(0, 1).repeat(1, 3, 1, 1)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def adversarial_train(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, epochs: int, batch: int, lr: float,
                      device: torch.device, seed: int = 0) -> nn.Module:  # fmt: skip
    """PGD-AT (Madry et al. 2018): PGD-5 with step eps/4, SGD; enough to make many test points survive."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.to(device)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            xb, yb = x[perm[i : i + batch]].to(device), y[perm[i : i + batch]].to(device)
            model.eval()
            x_adv = pgd_perturb(model, xb, yb, eps=eps, step_size=eps / 4, n_steps=5, generator=None)
            model.train()
            loss = F.cross_entropy(model(x_adv), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def build(args: argparse.Namespace, device: torch.device) -> tuple[nn.Module, Tensor, Tensor, str]:
    if args.run_dir:
        from robustperf.data import build_data, eval_tensors
        from robustperf.models import load_run_model

        model, cfg = load_run_model(args.run_dir, which="best", device=device)
        x, y = eval_tensors(build_data(cfg.data, seed=cfg.runtime.seed).test, args.n_examples, seed=0)
        return model.eval(), x, y, f"run {Path(args.run_dir).name} ({cfg.model.name} on {cfg.data.dataset})"
    torch.manual_seed(args.seed)
    if args.model == "mlp":
        x_tr, y_tr, x_te, y_te = digits(None)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                              nn.Linear(256, 10))  # fmt: skip
        what = "MLP 64-256-256-10, PGD-AT on digits 8x8"
    else:
        from robustperf.models import create_model

        x_tr, y_tr, x_te, y_te = digits(args.size)
        model = create_model("wide_resnet", num_classes=10, input_shape=(3, args.size, args.size), depth=args.depth,
                             width=args.width)  # fmt: skip
        what = f"WRN-{args.depth}-{args.width}, PGD-AT on digits resized to {args.size}x{args.size}x3"
    t0 = time.perf_counter()
    model = adversarial_train(model, x_tr, y_tr, eps=args.eps, epochs=args.epochs, batch=128, lr=args.lr,
                              device=device)  # fmt: skip
    log.info("trained %s in %.1f s", what, time.perf_counter() - t0)
    return model, x_te[: args.n_examples], y_te[: args.n_examples], f"{what} ({args.epochs} epochs, eps {args.eps:.4g})"


# ----------------------------------------------------------------------------------------------------------
# the two cascades
# ----------------------------------------------------------------------------------------------------------


class _StageLog(logging.Handler):
    """Records time and call counts whenever the reference logs 'robust accuracy after <ATTACK>'."""

    def __init__(self, counter: ForwardCounter) -> None:
        super().__init__(logging.DEBUG)
        self.counter, self.marks = counter, []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("robust accuracy after "):
            name = msg.split()[3].rstrip(":").lower()
            acc = float(msg.split(": ")[1].split("%")[0]) / 100
            self.marks.append((name, time.perf_counter(), acc, dict(self.counter.counts())))


def run_reference(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, bs: int, seed: int,
                  device: torch.device) -> dict:  # fmt: skip
    from pyautoattack import AutoAttack as RefAutoAttack

    counter = ForwardCounter(model)
    ref = RefAutoAttack(counter, eps=eps, norm={"linf": "Linf", "l2": "L2"}[norm], seed=seed, version="standard",
                        device=device)  # fmt: skip
    ref_log = logging.getLogger("auto-attack")
    handler = _StageLog(counter)
    ref_log.addHandler(handler)
    ref_log.setLevel(logging.DEBUG)
    ref_log.propagate = False
    try:
        synchronize(device)
        t0 = time.perf_counter()
        x_adv, _ = ref.run_standard_evaluation(x.to(device), y.to(device), batch_size=bs)
        synchronize(device)
        total = time.perf_counter() - t0
    finally:
        ref_log.removeHandler(handler)
    with torch.no_grad():
        robust = torch.cat([model(x_adv[i : i + bs]).argmax(1).cpu() for i in range(0, len(x), bs)]) == y
    stages, prev_t, prev_c = [], t0, {"forward_images": 0, "backward_images": 0}
    for name, t, acc, c in handler.marks:
        stages.append({"name": name, "seconds": t - prev_t, "robust_acc": acc,
                       "forward": c["forward_images"] - prev_c["forward_images"],
                       "backward": c["backward_images"] - prev_c["backward_images"]})  # fmt: skip
        prev_t, prev_c = t, c
    return {"robust": robust, "seconds": total, "stages": stages, "counts": counter.counts()}


def run_robustperf(model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, bs: int, seed: int,
                   device: torch.device, search_dtype: str, fab_rows: int | None, channels_last: bool) -> dict:  # fmt: skip
    if channels_last:  # what `robustperf.evaluate` does on CUDA by default; undone below for the reference
        model.to(memory_format=torch.channels_last)
    counter = ForwardCounter(model)
    params = {"fab-t": {"max_rows": fab_rows}} if fab_rows else {}
    aa = AutoAttack(AutoAttackConfig(eps=eps, norm=norm, seed=seed, search_dtype=search_dtype, attack_params=params))
    synchronize(device)
    t0 = time.perf_counter()
    out = aa.run(counter, x, y, batch_size=bs, device=device)
    synchronize(device)
    total = time.perf_counter() - t0
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    stages = [{"name": s.label, "seconds": s.seconds, "robust_acc": s.robust_acc, "forward": s.n_forward,
               "backward": s.n_backward} for s in out.stages]  # fmt: skip
    return {"robust": out.robust.cpu(), "clean": out.clean_correct.cpu(), "seconds": total, "stages": stages,
            "counts": counter.counts()}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------


def fastest(repeats: list[dict]) -> dict:
    """The first repeat's results with each stage's and the total time replaced by the minimum over repeats."""
    out = dict(repeats[0])
    out["seconds"] = min(r["seconds"] for r in repeats)
    out["stages"] = [
        {**stage, "seconds": min(r["stages"][i]["seconds"] for r in repeats)} for i, stage in enumerate(out["stages"])
    ]
    flips = sum(int((r["robust"] != out["robust"]).sum()) for r in repeats)
    if flips:
        log.warning("robust flags differ between repeats (%d flips): the run is not deterministic", flips)
    return out


def report(args: argparse.Namespace, what: str, n: int, ref: dict, ours: dict, device: torch.device) -> str:
    agree = (ref["robust"] == ours["robust"]).float().mean().item()
    if device.type == "cuda":
        machine = torch.cuda.get_device_name(device)
    else:
        machine = f"CPU ({platform.processor() or platform.machine()}), {os.cpu_count()} cores visible"
    threads = torch.get_num_threads()
    lines = [
        f"model: {what}",
        f"points: {n}, eps {args.eps:.6g} ({args.norm}), batch {args.batch_size}, seed {args.seed}, "
        f"search {args.search_dtype}, channels_last {args.channels_last}; times: minimum over {args.repeat} alternating repeat(s)",
        f"machine: {machine}; torch {torch.__version__}, {threads} intra-op thread(s)",
        f"clean accuracy: {ours['clean'].float().mean().item():.2%}",
        "",
        "| attack | reference s | robustperf s | speed-up | ref robust acc | rp robust acc | "
        "ref fwd/bwd images | rp fwd/bwd images |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r, o in zip(ref["stages"], ours["stages"], strict=False):
        lines.append(
            f"| {o['name']} | {r['seconds']:.2f} | {o['seconds']:.2f} | {r['seconds'] / max(o['seconds'], 1e-9):.2f}x"
            f" | {r['robust_acc']:.2%} | {o['robust_acc']:.2%} | {r['forward']}/{r['backward']}"
            f" | {o['forward']}/{o['backward']} |"
        )
    rc, oc = ref["counts"], ours["counts"]
    lines += [
        f"| **total** | {ref['seconds']:.2f} | {ours['seconds']:.2f} | {ref['seconds'] / ours['seconds']:.2f}x"
        f" | {ref['robust'].float().mean().item():.2%} | {ours['robust'].float().mean().item():.2%}"
        f" | {rc['forward_images']}/{rc['backward_images']} | {oc['forward_images']}/{oc['backward_images']} |",
        "",
        f"per-point robust flag agreement: {agree:.2%} ({int((ref['robust'] != ours['robust']).sum())} of {n} differ)",
        f"model calls (forward/backward): reference {rc['forward_calls']}/{rc['backward_calls']}, "
        f"robustperf {oc['forward_calls']}/{oc['backward_calls']}",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("mlp", "wrn"), default="mlp")
    p.add_argument("--run-dir", default=None)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=1)
    p.add_argument("--size", type=int, default=32, help="image side for --model wrn (32: CIFAR-shaped)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--n-examples", type=int, default=397)
    p.add_argument("--eps", type=lambda s: float(Fraction(s)), default=0.1)
    p.add_argument("--norm", choices=("linf", "l2"), default="linf")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--search-dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true", help="robustperf's run in channels-last (GPU)")
    p.add_argument("--fab-rows", type=int, default=None, help="FAB-T rows per pass (default: the batch size)")
    p.add_argument("--order", choices=("ref-first", "rp-first"), default="ref-first")
    p.add_argument("--repeat", type=int, default=1, help="alternate the two runs this often; report minimum times")
    p.add_argument("--out", type=Path, default=None, help="append the markdown table to this file")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True  # the reference anchor ran with TF32 convs (REFERENCE.md s. 6)
        torch.backends.cudnn.allow_tf32 = True
    model, x, y, what = build(args, device)
    for q in model.parameters():
        q.requires_grad_(False)
    runs: dict[str, list[dict]] = {"ref": [], "rp": []}
    order = ("ref", "rp") if args.order == "ref-first" else ("rp", "ref")
    for rep in range(args.repeat):  # alternate, so that a load spike on a shared machine hits both
        for who in order:
            log.info("running %s (%d/%d)", who, rep + 1, args.repeat)
            if who == "ref":
                runs["ref"].append(run_reference(model, x, y, args.eps, args.norm, args.batch_size, args.seed, device))
            else:
                runs["rp"].append(run_robustperf(model, x, y, args.eps, args.norm, args.batch_size, args.seed,
                                                 device, args.search_dtype, args.fab_rows,
                                                 args.channels_last))  # fmt: skip
    text = report(args, what, len(x), fastest(runs["ref"]), fastest(runs["rp"]), device)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(f"\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{text}\n")


if __name__ == "__main__":
    main()
