"""AutoAttack agreement on real CIFAR-10: robustperf's standard cascade vs the reference package, per image.

A run trained by `robustperf train`/`study` on CIFAR-10 (its best checkpoint) is attacked on the first
`--n-examples` images of the test batch (official order, so an image's index is its row in test_batch) at
eps 8/255 by the reference `AutoAttack(version="standard")` (pyautoattack) and by
`robustperf.attacks.autoattack.AutoAttack`, in one process, same model, points, batch size and seed.
Reported: robust accuracy of each, every image on which the verdicts differ (index, label, clean-correct,
reference verdict, robustperf verdict), the time ratio, PGD-20 accuracy (CE loss, step 2/255, random start)
and its gap to AutoAttack, and robustperf's sanity flags (`robustperf.attacks.checks`) on the first 256 images.

    OMP_NUM_THREADS=1 python benchmarks/cifar10_autoattack_agreement.py --run-dir runs/<run> \
        --n-examples 500 --out benchmarks/results/cifar10_autoattack_agreement_cpu
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoattack_speed import run_reference, run_robustperf  # noqa: E402  (a sibling script, not a package)
from robustperf.attacks import checks, pgd_perturb  # noqa: E402

log = logging.getLogger("cifar10_autoattack_agreement")
TOLERANCE_PP = 0.5  # issue 22: robust accuracies within 0.5 percentage points


def load(run_dir: str, n: int, device: torch.device) -> tuple[nn.Module, Tensor, Tensor, str]:
    """The run's best model and the first n test images in file order."""
    from robustperf.data import build_data, eval_tensors
    from robustperf.models import load_run_model

    model, cfg = load_run_model(run_dir, which="best", device=device)
    x, y = eval_tensors(build_data(cfg.data, seed=cfg.runtime.seed).test, None)
    if n > len(y):
        raise SystemExit(f"--n-examples {n} but the test set holds {len(y)} images; lower it")
    what = f"run {Path(run_dir).name}: {cfg.model.name} {dict(cfg.model.kwargs)}, {cfg.method.name}, {cfg.data.dataset}"
    return model.eval(), x[:n], y[:n], what


def pgd20(model: nn.Module, x: Tensor, y: Tensor, eps: float, bs: int, seed: int) -> Tensor:
    """Per-image robustness under PGD-20 (CE loss, step eps/4, one random start)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, len(x), bs):
        xb, yb = x[i : i + bs], y[i : i + bs]
        x_adv = pgd_perturb(model, xb, yb, eps=eps, step_size=eps / 4, n_steps=20, generator=gen)
        with torch.no_grad():
            out.append(model(x_adv).argmax(1) == yb)
    return torch.cat(out)


def sanity(model: nn.Module, x: Tensor, y: Tensor, eps: float, seed: int, stages: list[dict]) -> dict[str, dict]:
    """robustperf's sanity flags on the first 256 images (the same checks `robustperf.evaluate` runs)."""
    xb, yb = x[:256], y[:256]
    flags = [
        checks.check_randomized(model, xb),
        checks.check_softmax_output(model, xb),
        checks.check_zero_gradients(model, xb, yb),
        checks.check_square_beats_white_box([(s["name"], s["robust_acc"]) for s in stages]),
        checks.check_pgd_vs_fgsm(*checks.pgd_and_fgsm_accuracy(model, xb, yb, eps=eps, norm="linf", seed=seed)),
    ]
    return {f.name: {"fired": bool(f.fired), "detail": f.detail} for f in flags}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--n-examples", type=int, default=500)
    p.add_argument("--eps", type=lambda s: float(Fraction(s)), default=8 / 255)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write <out>.md and <out>.json")
    p.add_argument("--part", choices=("all", "ref", "rp", "report"), default="all",
                   help="ref / rp: run one cascade and save it to <out>.<part>.pt (two processes on a shared "
                        "machine); report: load both parts and finish")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = torch.device("cpu")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model, x, y, what = load(args.run_dir, args.n_examples, device)
    for q in model.parameters():
        q.requires_grad_(False)
    if args.part != "all" and args.out is None:
        raise SystemExit("--part needs --out (where the parts are saved)")
    parts: dict[str, dict] = {}
    for who, fn in (("ref", run_reference), ("rp", run_robustperf)):
        saved = args.out.with_suffix(f".{who}.pt") if args.out is not None else None
        if args.part == "report":
            if saved is None or not saved.is_file():
                raise SystemExit(f"{saved} is missing: run --part {who} first")
            parts[who] = torch.load(saved, weights_only=False)
        elif args.part in ("all", who):
            log.info("%s AutoAttack on %d images", who, len(y))
            extra = ("fp32", None, False) if who == "rp" else ()
            c0 = time.process_time()
            parts[who] = fn(model, x, y, args.eps, "linf", args.batch_size, args.seed, device, *extra)
            parts[who]["cpu_seconds"] = time.process_time() - c0
            if saved is not None and args.part == who:
                saved.parent.mkdir(parents=True, exist_ok=True)
                torch.save(parts[who], saved)
                return
    ref, ours = parts["ref"], parts["rp"]
    log.info("PGD-20 and sanity flags")
    t0 = time.perf_counter()
    pgd = pgd20(model, x, y, args.eps, args.batch_size, args.seed)
    pgd_s = time.perf_counter() - t0
    flags = sanity(model, x, y, args.eps, args.seed, ours["stages"])
    clean = ours["clean"]
    differ = torch.nonzero(ref["robust"] != ours["robust"]).flatten().tolist()
    ref_acc, rp_acc = ref["robust"].float().mean().item(), ours["robust"].float().mean().item()
    pgd_acc = pgd.float().mean().item()
    result = {
        "model": what, "n_examples": len(y), "eps": args.eps, "seed": args.seed, "batch_size": args.batch_size,
        "clean_acc": clean.float().mean().item(), "reference_robust_acc": ref_acc, "robustperf_robust_acc": rp_acc,
        "difference_pp": 100 * (rp_acc - ref_acc), "within_tolerance": abs(100 * (rp_acc - ref_acc)) <= TOLERANCE_PP,
        "differing_images": [{"index": i, "label": int(y[i]), "clean_correct": bool(clean[i]),
                              "reference_robust": bool(ref["robust"][i]), "robustperf_robust": bool(ours["robust"][i])}
                             for i in differ],
        "reference_seconds": ref["seconds"], "robustperf_seconds": ours["seconds"],
        "time_ratio_ref_over_rp": ref["seconds"] / ours["seconds"],
        "reference_stages": ref["stages"], "robustperf_stages": ours["stages"],
        "pgd20_robust_acc": pgd_acc, "pgd20_seconds": pgd_s, "pgd20_minus_autoattack_pp": 100 * (pgd_acc - rp_acc),
        "pgd20_robust_but_autoattack_not": int((pgd & ~ours["robust"]).sum()),
        "autoattack_robust_but_pgd20_not": int((~pgd & ours["robust"]).sum()),
        "sanity_flags": flags,
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores visible, "
                   f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)",
        "reference_cpu_seconds": ref.get("cpu_seconds"), "robustperf_cpu_seconds": ours.get("cpu_seconds"),
        "wall_seconds": time.perf_counter() - wall0, "cpu_seconds": time.process_time() - cpu0,
        "command": " ".join(sys.argv),
    }
    text = render(result)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text + "\n")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render(r: dict) -> str:
    """The markdown report of one agreement run."""
    lines = [
        "# AutoAttack agreement on real CIFAR-10: robustperf vs the reference (pyautoattack), CPU", "",
        f"Model: {r['model']}. Points: the first {r['n_examples']} images of the CIFAR-10 test batch, "
        f"eps {r['eps'] * 255:.3g}/255 (Linf), AutoAttack standard, seed {r['seed']}, batch {r['batch_size']}.",
        f"Machine: {r['machine']}; a shared 2-core x86_64 dev VM, no GPU, other jobs running (timings are noisy).",
        f"Command: `{r['command']}`; wall {r['wall_seconds']:.0f} s, CPU {r['cpu_seconds']:.0f} s (whole script).", "",
        "| | clean acc | robust acc | wall seconds | CPU seconds |", "| --- | --- | --- | --- | --- |",
        f"| reference AutoAttack | {r['clean_acc']:.2%} | {r['reference_robust_acc']:.2%} | "
        f"{r['reference_seconds']:.1f} | {_num(r.get('reference_cpu_seconds'))} |",
        f"| robustperf AutoAttack | {r['clean_acc']:.2%} | {r['robustperf_robust_acc']:.2%} | "
        f"{r['robustperf_seconds']:.1f} | {_num(r.get('robustperf_cpu_seconds'))} |",
        f"| robustperf PGD-20 (CE, step eps/4) | {r['clean_acc']:.2%} | {r['pgd20_robust_acc']:.2%} | "
        f"{r['pgd20_seconds']:.1f} | - |", "",
        f"- Robust accuracy difference robustperf - reference: {r['difference_pp']:+.2f} pp "
        f"({'within' if r['within_tolerance'] else 'OUTSIDE'} the {TOLERANCE_PP} pp tolerance).",
        f"- Images on which the verdicts differ: {len(r['differing_images'])} of {r['n_examples']}"
        + (": " + ", ".join(f"#{d['index']} (label {d['label']}, ref {'robust' if d['reference_robust'] else 'broken'}"
                            f", rp {'robust' if d['robustperf_robust'] else 'broken'})" for d in r["differing_images"])
           if r["differing_images"] else "."),
        f"- Time ratio reference / robustperf: {r['time_ratio_ref_over_rp']:.2f}x wall"
        + (f", {r['reference_cpu_seconds'] / r['robustperf_cpu_seconds']:.2f}x CPU"
           if r.get("reference_cpu_seconds") and r.get("robustperf_cpu_seconds") else "") + ".",
        f"- PGD-20 - AutoAttack gap: {r['pgd20_minus_autoattack_pp']:+.2f} pp "
        f"({r['pgd20_robust_but_autoattack_not']} images survive PGD-20 but not AutoAttack, "
        f"{r['autoattack_robust_but_pgd20_not']} the other way).",
        "- Sanity flags (robustperf, first 256 images): " + "; ".join(
            f"{k} {'FIRED' if v['fired'] else 'quiet'} ({v['detail']})" for k, v in r["sanity_flags"].items()), "",
        "| stage | reference s | robustperf s | reference robust acc | robustperf robust acc |",
        "| --- | --- | --- | --- | --- |",
    ]
    for a, b in zip(r["reference_stages"], r["robustperf_stages"], strict=False):
        lines.append(f"| {b['name']} | {a['seconds']:.1f} | {b['seconds']:.1f} | {a['robust_acc']:.2%} | "
                     f"{b['robust_acc']:.2%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
