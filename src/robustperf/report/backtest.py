"""The report's backtest table: the whole forecasting pipeline scored in robust accuracy on held-out runs."""

from __future__ import annotations

import html
import math
from typing import Any

from robustperf.report.tables import fmt


def backtest_table(bt: Any, notes: list[str] | None = None) -> str:
    """Held-out runs (observed vs predicted robust accuracy, error in points), the bias line and the verdict."""
    if bt is None:
        why = next((n for n in (notes or []) if n.startswith("backtest")), "no L(N, D) law was fitted")
        return f"<p class='note'>No backtest: {html.escape(why)}.</p>"
    head = ("<tr><th>held-out run</th><th>what is predicted</th><th>FLOPs</th><th>N</th><th>D</th>"
            "<th>observed robust acc</th><th>predicted</th><th>error (points)</th></tr>")
    body = []
    for r in bt.rows:
        what = ("compute-optimal forecast vs the best held-out run" if r["kind"] == "compute-optimal"
                else "this run's N, D")
        err = f"{100 * r['error']:+.1f}"
        large = abs(r["error"]) > 0.05
        body.append(f"<tr{' class=large' if large else ''}><td>{html.escape(r['run_id'])}</td><td>{what}</td>"
                    f"<td>{fmt(r['flops'])}</td><td>{fmt(r['N'])}</td><td>{fmt(r['D'])}</td>"
                    f"<td>{r['observed']:.1%}</td><td>{r['predicted']:.1%}</td>"
                    f"<td>{'<span class=flag>' + err + '</span>' if large else err}</td></tr>")
    verdict = ("<span class='ok'>passes</span>" if bt.passed
               else f"<span class='flag'>fails: {html.escape('; '.join(bt.reasons))}</span>")
    widen = ("" if not math.isfinite(bt.conformal_logit) else
             f" Forecast accuracy intervals are widened by {bt.conformal_logit:.2f} logit units (split-conformal on "
             f"these errors, {bt.conformal_level:.0%} coverage).")
    return (f"<p>Law, {html.escape(bt.map_form)} loss &rarr; accuracy map and allocation refitted on the {bt.n_train} "
            f"runs below {fmt(bt.threshold_flops)} FLOPs. Bias: {html.escape(bt.bias_line())}. "
            f"Mean |error| {100 * bt.mean_abs_error:.1f} points. Backtest {verdict}.{widen}</p>"
            f"<table class='data'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
