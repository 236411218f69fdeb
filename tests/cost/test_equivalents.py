"""Relatable equivalents: sourced and dated constants, arithmetic, the CLI forecast and the report's forecast table."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.cost.constants import (
    COUNTRY_ANNUAL_CO2_KG,
    EQUIVALENTS,
    describe_equivalents,
    equivalents,
)


def test_every_equivalent_is_sourced_and_dated() -> None:
    for eq in [*(e.per_unit for e in EQUIVALENTS.values()), *COUNTRY_ANNUAL_CO2_KG.values()]:
        assert eq.value > 0 and eq.source and eq.year is not None and 2015 <= eq.year <= 2026


def test_equivalents_arithmetic() -> None:
    # 1,984 lbs per NY-SF round trip (Strubell et al. 2019) is 900 kg: 1,800 kg is two flights.
    values = equivalents(10791.0 * 3, 1800.0)
    assert values["flights_ny_sf"] == pytest.approx(2.0)
    assert values["household_years"] == pytest.approx(3.0)
    assert values["car_km"] == pytest.approx(1800.0 / 0.2485)
    assert values["share_us"] == pytest.approx(1800.0 / 6.343e12)
    assert set(equivalents(1.0, None)) == {"household_years"}  # no CO2: only the kWh-based one
    assert "world's" in describe_equivalents(equivalents(None, 1e11, country="world"), country="world")
    assert "world's" not in describe_equivalents(equivalents(None, 1.0, country="world"), country="world")  # < 1e-3
    with pytest.raises(ValueError, match="choose one of"):
        equivalents(1.0, 1.0, country="atlantis")


def test_cli_forecast_prints_equivalents() -> None:
    res = CliRunner().invoke(app, ["forecast", "--law", "bartoldson2024_approach2", "--fid", "1.65", "--flops", "1e21"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    m = re.search(r"equivalent to: ([\d.e+-]+) round-trip flights", text)
    assert m and float(m.group(1)) > 0
    assert "Strubell et al. 2019" in text and "household" in text and "km driven" in text


def test_report_forecast_table_has_equivalents() -> None:
    from robustperf.report.tables import forecast_table

    row = {"target": "budget 1e18 FLOPs", "law": "x", "energy_kwh": (10791.0, 5000.0, 20000.0),
           "co2_kg": (900.0, 450.0, 1800.0), "message": ""}
    out = forecast_table([row])
    assert "equivalent to" in out
    assert "1 round-trip flights" in out and "1 years of an average US household" in out
    assert "US EIA" in out  # sources under the table


def test_cli_forecast_json_and_cost_estimate_carry_equivalents() -> None:
    import json

    runner = CliRunner()
    res = runner.invoke(app, ["forecast", "--law", "bartoldson2024_approach2", "--fid", "1.65", "--flops", "1e21",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["equivalents"]["flights_ny_sf"] > 0 and out["equivalents"]["share_us"] > 0
    res = runner.invoke(app, ["cost", "estimate", "configs/quickstart.yaml"])
    assert res.exit_code == 0, res.output
    # a quickstart run is ~1e-4 kWh: every equivalent is below 1e-3 of its unit, so none is told (issue 27)
    assert "equivalent to" in res.output and "round-trip flights" not in " ".join(res.output.split())
    assert "below 1e-3 of its unit" in " ".join(res.output.split())


def test_equivalents_below_a_thousandth_of_their_unit_are_not_told() -> None:
    """Issue 27: '9.61e-21 of the United States' annual emissions' is noise."""
    from robustperf.cost.constants import describe_equivalents, equivalents

    assert describe_equivalents(equivalents(1e-6, 1e-7)) == ""
    big = describe_equivalents(equivalents(1e6, 4e5))
    assert "flights" in big or "household" in big


def test_cpu_energy_follows_cpu_time_not_wall_time() -> None:
    """A waiting process uses wall time but no CPU time: its estimated energy stays ~0 (issue 27)."""
    from robustperf.cost.energy import CpuTimeMeter

    wall = iter([0.0, 100.0])
    cpu = iter([5.0, 7.0])
    meter = CpuTimeMeter(12.0, "test", clock=lambda: next(wall), cpu_clock=lambda: next(cpu))
    meter.start()
    reading = meter.stop()
    assert reading.seconds == 100.0 and reading.joules == 24.0  # 12 W x 2 CPU-s, not 12 W x 100 s
    assert reading.source.startswith("estimate: 12 W per core x process CPU time")
