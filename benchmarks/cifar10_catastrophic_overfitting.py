"""Catastrophic-overfitting curves on real CIFAR-10: FGSM vs PGD accuracy by epoch, and the detector's verdict.

Reads the per-epoch evaluations (metrics.jsonl) of runs trained with configs/cifar10_co_fgsm.yaml (FGSM from
zero init) and configs/cifar10_co_nfgsm.yaml (the N-FGSM control), or any single-step runs, and writes
<out>.png (clean / PGD / FGSM accuracy per epoch, one panel per run) and <out>.md (the table, the detector's
flag per epoch from the training loop, and each run's command, wall and CPU time from its log).

    python benchmarks/cifar10_catastrophic_overfitting.py runs/co/cifar10-co-fgsm-* runs/co/cifar10-co-nfgsm-* \
        --out benchmarks/results/cifar10_catastrophic_overfitting_cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {"fgsm_noproj": "N-FGSM", "fast_at": "fast-AT"}


def evals(run: Path) -> list[dict[str, Any]]:
    """The run's per-epoch evaluation rows, in order."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out = [r for r in rows if r.get("kind") == "eval"]
    if not out:
        raise SystemExit(f"{run} has no evaluation rows in metrics.jsonl; train it first")
    for r in out:
        for key in ("clean_acc", "robust_acc", "fgsm_acc"):
            if key in r and not 0.0 <= r[key] <= 1.0:
                raise SystemExit(f"{run}: {key} {r[key]} outside [0, 1]")
    return out


def describe(run: Path) -> str:
    cfg = json.loads((run / "config.json").read_text())
    m, a = cfg["method"], cfg["method"]["attack"]
    start = "zero init" if m["name"] == "pgd_at" and not a["random_start"] else "random init"
    name = "FGSM" if m["name"] == "pgd_at" and a["n_steps"] == 1 else NAMES.get(m["name"], m["name"])
    return (f"{name} ({start}) at eps {a['eps'] * 255:.3g}/255, {cfg['model']['name']} "
            f"{cfg['model']['kwargs']}, {cfg['optim']['epochs']} epochs x {cfg['data'].get('n_train') or 'all'} images")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    data = {run: evals(run) for run in args.runs}
    fig, axes = plt.subplots(1, len(data), figsize=(5.2 * len(data), 3.8), squeeze=False, sharey=True)
    lines = ["# Catastrophic overfitting on real CIFAR-10 (5,482-image subset), CPU", ""]
    for ax, (run, rows) in zip(axes[0], data.items(), strict=True):
        ep = [r["epoch"] + 1 for r in rows]
        ax.plot(ep, [r["clean_acc"] for r in rows], "o-", label="clean")
        ax.plot(ep, [r["robust_acc"] for r in rows], "s-", label="PGD-10")
        if all("fgsm_acc" in r for r in rows):
            ax.plot(ep, [r["fgsm_acc"] for r in rows], "^-", label="FGSM")
        co = [r["epoch"] + 1 for r in rows if r.get("catastrophic_overfitting")]
        if co:
            ax.axvline(co[0], color="red", ls="--", label=f"CO flagged (epoch {co[0]})")
        ax.set_title(describe(run), fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        verdict = (f"catastrophic overfitting flagged at epoch {co[0]}" if co
                   else "no catastrophic overfitting flagged")
        lines += [f"## {describe(run)}", "", f"Run `{run.name}`; detector verdict: **{verdict}** "
                  f"(rule: PGD accuracy falls by >= 0.2 from one evaluation to the next while FGSM accuracy rises).",
                  "", "| epoch | clean acc | PGD-10 acc | FGSM acc | FGSM - PGD | flag |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            f = r.get("fgsm_acc")
            gap = f"{f - r['robust_acc']:+.3f}" if f is not None else "-"
            lines.append(f"| {r['epoch'] + 1} | {r['clean_acc']:.3f} | {r['robust_acc']:.3f} | "
                         f"{f if f is None else format(f, '.3f')} | {gap} | {r.get('catastrophic_overfitting')} |")
        lines.append("")
    axes[0][0].set_ylabel("accuracy (500 or 250 held-out test images)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
