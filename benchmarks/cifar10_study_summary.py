"""Fit table of a study's report next to the papers' CIFAR-10 numbers (REFERENCE.md section 4).

Reads the report's analysis.json (written by `robustperf study` / `robustperf report`) and the study's run
records, and writes a markdown file with: every run (size, data, FLOPs, accuracies, loss), the fitted laws
(status, parameters with bootstrap intervals), N*/D* per named budget, the extrapolation check, and a
comparison of the exponents with the published ones. The sentence on why each row differs is the author's
and lives in the results file, not here.

    python benchmarks/cifar10_study_summary.py runs/reports/cifar10-small/analysis.json --runs-dir runs \
        --prefix cifar10-small- --out benchmarks/results/cifar10_small_study/fit_table.md
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

# REFERENCE.md section 4 (papers/002 envelope; papers/001 Approach 2 at FID 0 and Table 3)
PUBLISHED = {
    "envelope_alpha": (0.01, "Debenedetti et al. 2023 (papers/002), 19-bin envelope, robust acc vs FLOPs"),
    "alpha": (0.24, "Bartoldson et al. 2024 (papers/001) Approach 2, TRADES loss"),
    "beta": (0.23, "Bartoldson et al. 2024 (papers/001) Approach 2"),
    "E": (0.48, "Bartoldson et al. 2024 (papers/001) Approach 2, FID 0"),
    "a": (0.48, "Bartoldson et al. 2024 (papers/001) Table 3, N* ~ C^a at FID 0"),
}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:.3g}"
    return str(v)


def _interval(fit: dict[str, Any], name: str) -> str:
    iv = ((fit.get("bootstrap") or {}).get("intervals") or {}).get(name)
    return f"[{_fmt(iv[0])}, {_fmt(iv[1])}]" if iv else "-"


def runs_table(runs_dir: Path, prefix: str, eval_key: str | None) -> list[str]:
    rows = []
    for d in sorted(runs_dir.glob(f"{prefix}*")):
        if not (d / "result.json").is_file():
            continue
        cfg, rec = json.loads((d / "config.json").read_text()), json.loads((d / "result.json").read_text())
        if rec.get("status") != "finished":
            continue
        f, ev = rec.get("final") or {}, (rec.get("evaluations") or {}).get(eval_key or "", {})
        for key in ("clean_acc", "robust_acc"):
            for src in (f, ev):
                if key in src and not 0.0 <= src[key] <= 1.0:
                    raise SystemExit(f"{d.name}: {key} {src[key]} outside [0, 1]")
        rows.append((f.get("n_params", 0), f.get("samples_seen", 0), d.name, cfg, rec, f, ev))
    out = ["| run | width | N (params) | n_train x epochs = D | train FLOPs | clean | PGD-40 (CW) | APGD-CE+T | "
           "adv loss | status |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for n, dd, name, cfg, rec, f, ev in sorted(rows, key=lambda r: (r[0], r[1])):
        out.append(f"| {name} | {cfg['model']['kwargs'].get('width')} | {n} | {cfg['data'].get('n_train')} x "
                   f"{cfg['optim']['epochs']} = {dd} | {_fmt((rec.get('cost') or {}).get('train_flops'))} | "
                   f"{_fmt(f.get('clean_acc'))} | {_fmt(f.get('robust_acc'))} | {_fmt(ev.get('robust_acc'))} | "
                   f"{_fmt(f.get('adv_loss'))} | {rec.get('status')} |")
    return out


def fit_tables(a: dict[str, Any]) -> list[str]:
    out = ["| law | status | parameter | value | 95 % bootstrap interval |", "| --- | --- | --- | --- | --- |"]
    for metric, fit in (a.get("envelope") or {}).items():
        for p, v in (fit.get("params") or {}).items():
            out.append(f"| envelope power law, {metric} vs FLOPs | {fit.get('status')} | {p} | {_fmt(v)} | "
                       f"{_interval(fit, p)} |")
    s = a.get("surface") or {}
    for p, v in (s.get("params") or {}).items():
        out.append(f"| L(N, D) {s.get('law', '')} on adversarial loss | {s.get('status')} | {p} | {_fmt(v)} | "
                   f"{_interval(s, p)} |")
    m = a.get("loss_to_accuracy") or {}
    for p, v in (m.get("params") or {}).items():
        out.append(f"| loss -> accuracy map ({m.get('law', '')}) | {m.get('status')} | {p} | {_fmt(v)} | "
                   f"{_interval(m, p)} |")
    return out


def forecasts(a: dict[str, Any]) -> list[str]:
    out = ["| target | law | estimate [low, high] | N* | D* | caveat / validity |", "| --- | --- | --- | --- | --- | --- |"]
    for f in a.get("forecasts") or []:
        acc, n, d = f.get("accuracy") or [None] * 3, f.get("N") or [None] * 3, f.get("D") or [None] * 3
        flops = f.get("flops") or [None] * 3
        est = (f"acc {_fmt(acc[0])} [{_fmt(acc[1])}, {_fmt(acc[2])}]" if str(f.get("target", "")).startswith("budget")
               else f"FLOPs {_fmt(flops[0])} [{_fmt(flops[1])}, {_fmt(flops[2])}]")
        if not f.get("reachable", True):
            est = f"not reachable: {f.get('message', '')}"
        note = "; ".join(x for x in (f.get("caveat"), f.get("validity"), f.get("held_out")) if x)
        out.append(f"| {f.get('target')} | {f.get('law')} | {est} | {_fmt(n[0])} | {_fmt(d[0])} | {note} |")
    return out


def comparison(a: dict[str, Any]) -> list[str]:
    env = ((a.get("envelope") or {}).get("robust_acc") or {})
    s = a.get("surface") or {}
    sp = s.get("params") or {}
    al, be = sp.get("alpha"), sp.get("beta")
    ours = {
        "envelope_alpha": ((env.get("params") or {}).get("alpha"), _interval(env, "alpha"), env.get("status")),
        "alpha": (al, _interval(s, "alpha"), s.get("status")),
        "beta": (be, _interval(s, "beta"), s.get("status")),
        "E": (sp.get("E"), _interval(s, "E"), s.get("status")),
        "a": (be / (al + be) if al is not None and be is not None and al + be > 0 else None, "-", s.get("status")),
    }
    out = ["| quantity | this study (CIFAR-10 subset, CPU) | interval | fit status | published | source |",
           "| --- | --- | --- | --- | --- | --- |"]
    for k, (pub, src) in PUBLISHED.items():
        v, iv, st = ours[k]
        out.append(f"| {k} | {_fmt(v)} | {iv} | {st} | {pub} | {src} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("analysis", type=Path)
    p.add_argument("--runs-dir", type=Path, required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    a = json.loads(args.analysis.read_text())
    src = str(a.get("robust_source") or "")
    eval_key = src.split(".")[1] if src.startswith("evaluations.") else None
    ex = a.get("extrapolation") or {}
    lines = ["## Runs", "", *runs_table(args.runs_dir, args.prefix, eval_key), "",
             f"Robust accuracy in the fits: `{src}`.", "", "## Fits", "", *fit_tables(a), "",
             "## Forecasts (N*, D* for the named budgets)", "", *forecasts(a), "", "## Extrapolation check", ""]
    for name, e in ex.items():
        if isinstance(e, dict):
            lines.append(f"- {e.get('law', name)}: refitted on {e.get('n_train')} runs below "
                         f"{_fmt(e.get('threshold_flops'))} FLOPs; mean absolute error on the held-out runs "
                         f"{_fmt(e.get('mean_abs_error'))} ({'large' if e.get('large') else 'within tolerance'}; "
                         f"status {e.get('status')}).")
    lines += ["", "## Summary (the report's own words)", "", str(a.get("summary", "")), "",
              "## Notes", "", *[f"- {n}" for n in a.get("notes") or []], "",
              "## Comparison with the papers' CIFAR-10 numbers (REFERENCE.md section 4)", "", *comparison(a)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
