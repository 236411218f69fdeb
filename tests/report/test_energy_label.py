"""The report's energy panels say whether their numbers were metered or estimated."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402

from robustperf.report import plots  # noqa: E402

EST = "estimate: 24 W = 12 W/core x 2 CPU core(s) in use"


def _frame(sources: list[str | None]) -> pd.DataFrame:
    n = len(sources)
    return pd.DataFrame({
        "run_id": [f"r{i}" for i in range(n)], "status": ["finished"] * n, "model": ["tiny"] * n,
        "flops": [1e9 * (i + 1) for i in range(n)], "seconds": [10.0] * n,
        "energy_kwh": [None if s in (None, "none") else 1e-4 for s in sources],
        "co2_kg": [None if s in (None, "none") else 5e-5 for s in sources],
        "usd": [None if s in (None, "none") else 1e-5 for s in sources],
        "energy_source": sources,
    })


def test_label_per_source_mix() -> None:
    assert plots.energy_label(_frame([EST, EST])) == "estimated"
    assert plots.energy_label(_frame(["rapl", "nvml"])) == "metered"
    assert plots.energy_label(_frame(["rapl", EST, EST])) == "mixed: 2 estimated, 1 metered"
    assert plots.energy_label(_frame(["none", None])) == "not measured"
    assert plots.energy_label(pd.DataFrame({"run_id": ["a"]})) == "not measured"


def test_cost_panels_are_filled_and_titled_estimated() -> None:
    fig = plots.cost_breakdown(_frame([EST, EST, EST]))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "time (s)"
    assert all(t.endswith("\nestimated") for t in titles[1:])
    assert all(len(ax.patches) == 3 for ax in fig.axes)  # three bars in every panel, none empty
