"""Report tables as HTML: leaderboard with cost columns, forecasts with intervals, fitted laws, flags.

Also the overlays of published data (`load_overlay`): RobustBench's leaderboard and Debenedetti et
al.'s runs (REFERENCE.md s.7), mapped onto the columns the figures use.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from robustperf.store import schema
from robustperf.store.schema import COST, FINAL

# (column of the report's frame, header): the frame names each index column by its schema `short` name
LEADERBOARD_COLUMNS: tuple[tuple[str, str], ...] = tuple((schema.column(key).short, header) for key, header in (
    (schema.RUN_ID, "run"), (schema.STATUS, "status"), (schema.CONFIG_MODEL, "model"), (FINAL.n_params, "N"),
    (FINAL.samples_seen, "D"), (schema.CONFIG_ATTACK_STEPS, "PGD steps"), (schema.CONFIG_SEED, "seed"),
    (FINAL.clean_acc, "clean acc"), (FINAL.robust_acc, "robust acc"), (FINAL.adv_loss, "adv loss"),
    (COST.train_flops, "train FLOPs"), (COST.seconds, "time (s)"), (COST.energy_kwh, "kWh"), (COST.co2_kg, "CO2 kg"),
    (COST.usd, "USD"),
))


def fmt(value: Any) -> str:
    """Numbers to 4 significant digits, accuracies as given, missing as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞"
        return f"{value:.4g}"
    return html.escape(str(value))


def _interval(e: tuple[float, float | None, float | None] | None) -> str:
    if e is None:
        return "–"
    value, lo, hi = e
    if lo is None or hi is None:
        return fmt(value)
    return f"{fmt(value)} <span class='ci'>[{fmt(lo)}, {fmt(hi)}]</span>"


def leaderboard_table(frame: Any) -> str:
    """Every run, best robust accuracy first, with its cost columns."""
    data = frame.sort_values(["robust_acc", "clean_acc"], ascending=False, na_position="last")
    from robustperf.report.plots import energy_label

    energy = energy_label(data)  # "estimated" beside every energy-derived column that is not metered
    marked = {"energy_kwh", "co2_kg", "usd"}
    head = "".join(f"<th>{h}{f' ({energy})' if col in marked and energy != 'metered' else ''}</th>"
                   for col, h in LEADERBOARD_COLUMNS)
    rows = []
    for _, row in data.iterrows():
        cells = "".join(f"<td>{fmt(_plain(row.get(col)))}</td>" for col, _ in LEADERBOARD_COLUMNS)
        cls = " class='failed'" if row.get("status") == "failed" else ""
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table class='data'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def forecast_table(rows: list[dict[str, Any]]) -> str:
    """Forecasts with their bootstrap intervals (95 % unless the study said otherwise)."""
    if not rows:
        return "<p class='note'>No forecasts (add targets under <code>forecast:</code> in the study).</p>"
    from robustperf.cost.constants import MFU_DEFAULT
    cols = (("target", "target"), ("law", "law"), ("flops", "FLOPs"), ("accuracy", "robust acc"), ("N", "N*"),
            ("D", "D*"), ("gpu_hours", "H100 GPU-h (est.)"), ("energy_kwh", "kWh (est.)"), ("co2_kg", "CO2 kg (est.)"),
            ("usd", "USD (est.)"),
            ("note", "validity and caveats"))
    head = "".join(f"<th>{h}</th>" for _, h in cols) + "<th>equivalent to</th>"
    body = []
    for r in rows:
        cells = []
        for key, _ in cols:
            if key == "note":
                cells.append(f"<td class='note' style='text-align:left'>{_row_note(r)}</td>")
                continue
            value = r.get(key)
            text = _interval(value) if isinstance(value, tuple) else fmt(value)
            if key == "accuracy" and r.get("extrapolation") and value is not None:
                text += " <span class='flag'>extrapolation</span>"  # in the same cell as the number
            if key == "law" and (r.get("backtest_passed") is False or r.get("held_out_large")):
                text += " <span class='flag'>unreliable (backtest)</span>"
            cells.append(f"<td>{text}</td>")
        cells.append(f"<td>{html.escape(_equivalents_text(r))}</td>")
        cls = " class='large'" if r.get("held_out_large") or r.get("caveat") else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    assumption = (f"H100 GPU-hours, kWh, CO2 and USD are estimated, not measured: training FLOPs at MFU "
                  f"{MFU_DEFAULT.value:g} of the H100's datasheet bf16 peak ({MFU_DEFAULT.source}), at its TDP.")
    return (f"<table class='data'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<p class='note'>{html.escape(assumption)} {html.escape(_equivalents_sources())}</p>")


def _equivalents_text(row: dict[str, Any]) -> str:
    """A forecast row's kWh and CO2 (point values) as flights, household-years, car-km and a share of emissions."""
    from robustperf.cost.constants import describe_equivalents, equivalents

    def point(v: Any) -> float | None:
        x = v[0] if isinstance(v, tuple) else v
        return float(x) if isinstance(x, int | float) and math.isfinite(x) else None

    return describe_equivalents(equivalents(point(row.get("energy_kwh")), point(row.get("co2_kg"))))


def _equivalents_sources() -> str:
    from robustperf.cost.constants import COUNTRY_ANNUAL_CO2_KG, COUNTRY_DEFAULT, EQUIVALENTS

    parts = [f"1 {e.unit} = {e.per_unit.value:g} {e.per_unit.unit} ({e.per_unit.source})" for e in EQUIVALENTS.values()]
    c = COUNTRY_ANNUAL_CO2_KG[COUNTRY_DEFAULT]
    parts.append(f"annual emissions = {c.value:g} {c.unit} ({c.source})")
    return "Equivalents: " + "; ".join(parts) + "."



def _row_note(r: dict[str, Any]) -> str:
    """Why a forecast row can (or cannot) be trusted: reachability, validity, fit caveat, held-out error."""
    parts = []
    if r.get("message") and r["message"] != "ok":
        parts.append(str(r["message"]))
    if r.get("backtest_passed") is not None:
        parts.append("backtest in accuracy " + ("passed" if r["backtest_passed"] else "FAILED: not a headline forecast"))
    for key in ("validity", "caveat", "held_out"):
        if r.get(key):
            parts.append(str(r[key]))
    text = "; ".join(html.escape(p) for p in parts)
    if r.get("caveat") or r.get("held_out_large") or r.get("backtest_passed") is False:
        text = f"<span class='flag'>{text}</span>"
    return text or "–"


def extrapolation_table(checks: dict[str, Any]) -> str:
    """Held-out largest runs: observed vs predicted by the law refitted on the rest, error marked when large."""
    if not checks:
        return ("<p class='note'>No extrapolation check: too few runs to hold out the largest and still fit "
                "(see Sanity flags).</p>")
    parts = []
    for check in checks.values():
        head = ("<tr><th>held-out run</th><th>N</th><th>D</th><th>train FLOPs</th><th>observed</th>"
                "<th>predicted</th><th>error</th></tr>")
        body = []
        for r in check.rows:
            large = abs(r["error"]) > 0.1
            err = f"{r['error']:+.1%}"
            body.append(f"<tr{' class=large' if large else ''}><td>{html.escape(r['run_id'])}</td>"
                        f"<td>{fmt(r.get('n_params'))}</td><td>{fmt(r.get('samples_seen'))}</td><td>{fmt(r['flops'])}</td>"
                        f"<td>{fmt(r['observed'])}</td><td>{fmt(r['predicted'])}</td>"
                        f"<td>{'<span class=flag>' + err + '</span>' if large else err}</td></tr>")
        verdict = ("<span class='flag'>large: forecasts of this law are marked unreliable</span>" if check.large
                   else "<span class='ok'>within tolerance</span>")
        parts.append(f"<p><b>{html.escape(check.law)}</b>: refitted on {check.n_train} runs below "
                     f"{fmt(check.threshold_flops)} FLOPs; mean held-out error {check.mean_abs_error:.1%} ({verdict}).</p>"
                     f"<table class='data'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
    return "".join(parts)


def fits_table(analysis: Any) -> str:
    """The fitted laws: parameters with intervals, points used, goodness of fit, status."""
    fits = [(f"envelope power law: {m} = C x FLOPs^alpha", f) for m, f in analysis.envelope.items()]
    if getattr(analysis, "saturating", None) is not None:
        fits.append(("saturating envelope: robust error = A (FLOPs/1e12)^-alpha + floor", analysis.saturating))
    if analysis.surface is not None:
        fits.append((f"{analysis.surface.law}: adv loss = A/N^alpha + B/D^beta + E", analysis.surface))
    if analysis.loss_to_accuracy is not None:
        form = ("logit(robust acc) = slope x adv loss + intercept" if analysis.loss_to_accuracy.law == "logit_linear"
                else "robust acc = slope x adv loss + intercept")
        fits.append((form, analysis.loss_to_accuracy))
    if not fits:
        return "<p class='note'>No laws fitted.</p>"
    body = []
    for title, f in fits:
        params = ", ".join(f"{html.escape(k)} = {html.escape(str(f.estimate(k)))}" for k in f.params)
        r2 = f.metrics.r2
        status = html.escape(f.status.value)
        if not f.ok:
            status = f"<span class='flag'>{status}</span>: {html.escape(f.caveat())}"
            if f.poorly_identified:
                reasons = f.metrics.identifiability.problems if f.metrics.identifiability else ()
                status += f" <span class='note'>({html.escape('; '.join(reasons))})</span>"
        body.append(f"<tr><td>{html.escape(title)}</td><td>{params or '–'}</td><td>{f.n_points}</td>"
                    f"<td>{fmt(r2)}</td><td style='text-align:left'>{status}</td></tr>")
    extra = f"<p class='note'>Measured FLOPs per parameter per sample k = {fmt(analysis.k)}.</p>" if analysis.k else ""
    return ("<table class='data'><thead><tr><th>law</th><th>parameters [95 % bootstrap]</th><th>points</th>"
            f"<th>R²</th><th>status</th></tr></thead><tbody>{''.join(body)}</tbody></table>{extra}")


def flags_list(flags: list[tuple[str, str]], notes: list[str]) -> str:
    """Sanity flags of runs and evaluations, and the notes of skipped fits."""
    items = [f"<li class='flag'><code>{html.escape(r)}</code>: {html.escape(f)}</li>" for r, f in flags]
    items += [f"<li class='note'>{html.escape(n)}</li>" for n in notes]
    if not items:
        return "<p class='ok'>No sanity flags were raised.</p>"
    return f"<ul>{''.join(items)}</ul>"


def load_overlay(path: str | Path) -> Any:
    """A published table mapped to the figure columns ``label, flops, clean_acc, robust_acc`` (fractions).

    Recognised: Debenedetti et al. 2023 ``results.csv`` (FLOPs = train_flops [TFLOP/epoch] x 1e12 x epochs,
    see its SOURCE.md) and the RobustBench leaderboard CSV (no training FLOPs: only the Pareto figure).

    Raises:
        ValueError: a CSV of neither kind (the message lists the columns it needs).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"overlay {str(p)!r} does not exist")
    raw = pd.read_csv(p)
    if {"train_flops", "epochs", "aa_robust_acc", "eval_acc"} <= set(raw.columns):
        return pd.DataFrame({"label": "Debenedetti et al. 2023 (CIFAR-10)",
                             "flops": raw["train_flops"] * 1e12 * raw["epochs"],
                             "clean_acc": raw["eval_acc"] / 100.0, "robust_acc": raw["aa_robust_acc"] / 100.0})
    if {"clean_acc", "autoattack_acc", "dataset"} <= set(raw.columns):
        sub = raw[raw["dataset"] == "cifar10"] if (raw["dataset"] == "cifar10").any() else raw
        return pd.DataFrame({"label": "RobustBench l-inf leaderboard (CIFAR-10)", "flops": float("nan"),
                             "clean_acc": sub["clean_acc"] / 100.0, "robust_acc": sub["autoattack_acc"] / 100.0})
    raise ValueError(f"overlay {p.name!r}: need Debenedetti columns (train_flops, epochs, aa_robust_acc, eval_acc) "
                     "or RobustBench columns (dataset, clean_acc, autoattack_acc)")
