"""Sourced constants for converting time and energy into kWh, CO2 and USD.

Pure Python (no torch): the scaling module imports these for forecasts. Every
constant carries its source and year, and every run record stores the values
it used, because the choice moves results by ~25 % (REFERENCE.md section 3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sourced:
    """A number with where it came from."""

    value: float
    unit: str
    source: str
    year: int | None = None


# Power usage effectiveness of the data centre: energy at the wall / energy at the GPU.
PUE_DEFAULT = Sourced(1.58, "ratio", "Strubell et al. 2019 (global average data-centre PUE), as used by Debenedetti et al. 2023", 2019)

# Model FLOPs utilisation: the one default of every FLOPs -> GPU-hours conversion (issue 27: `forecast` used
# 0.4 and `cost estimate` 0.3, printed nowhere). Against the datasheet dense bf16 peak (989 TFLOP/s on an H100).
MFU_DEFAULT = Sourced(0.3, "share of the datasheet bf16 peak",
                      "REFERENCE.md s.6: TRADES-10 on a WRN-28-10, one H100, bf16 + channels_last (+ torch.compile): "
                      "267-298 of 989 TFLOP/s = 0.27-0.30", 2026)

# Electricity price.
USD_PER_KWH_DEFAULT = Sourced(0.12, "USD/kWh", "US average electricity price, as used by Debenedetti et al. 2023", 2023)

# Grid carbon intensity presets (gCO2eq per kWh).
GRID_INTENSITY: dict[str, Sourced] = {
    "gcp_us_central1_2019": Sourced(
        566.3, "gCO2/kWh", "ML CO2 Impact calculator, GCP us-central1 (2019 eGRID); Debenedetti et al. 2023 default", 2019
    ),
    "google_region_data": Sourced(430.0, "gCO2/kWh", "Google Cloud region carbon data (us-central1), newer table", 2023),
    "us_average_2023": Sourced(369.5, "gCO2/kWh", "US average grid intensity 2023", 2023),
}
GRID_DEFAULT = "gcp_us_central1_2019"

# Cloud GPU-hour prices seen in the Debenedetti et al. 2023 data (aggregated_data.csv bounds).
GPU_HOUR_PRICES: dict[str, Sourced] = {
    "debenedetti2023_low": Sourced(0.43, "USD/GPU-hour", "Debenedetti et al. 2023, cloud cost lower bound", 2023),
    "debenedetti2023_high": Sourced(1.46, "USD/GPU-hour", "Debenedetti et al. 2023, cloud cost upper bound", 2023),
}


@dataclass(frozen=True)
class GPUSpec:
    """Datasheet figures of a GPU: dense bf16/fp16 tensor peak and board power limit."""

    name: str
    peak_bf16_tflops: float  # dense, no sparsity
    tdp_watts: float
    memory_gib: float
    source: str


GPUS: dict[str, GPUSpec] = {
    "h100": GPUSpec("NVIDIA H100 SXM5 80GB", 989.0, 700.0, 80.0, "NVIDIA H100 datasheet (dense BF16 989 TFLOP/s, 700 W)"),
    "h200": GPUSpec("NVIDIA H200 SXM 141GB", 989.0, 700.0, 141.0, "NVIDIA H200 datasheet (dense BF16 989 TFLOP/s, 700 W)"),
    "a100": GPUSpec("NVIDIA A100 SXM4 80GB", 312.0, 400.0, 80.0, "NVIDIA A100 datasheet (dense BF16 312 TFLOP/s, 400 W)"),
    "v100": GPUSpec("NVIDIA V100 SXM2 32GB", 125.0, 300.0, 32.0, "NVIDIA V100 datasheet (FP16 tensor 125 TFLOP/s, 300 W)"),
    "a6000": GPUSpec("NVIDIA RTX A6000", 154.8, 300.0, 48.0, "NVIDIA RTX A6000 datasheet (dense FP16/BF16 tensor, 300 W)"),
}

# CPU power when nothing can be metered: per core in use (the "Any" processor of the Green
# Algorithms calculator; its table of named CPUs ranges from ~4 to ~24 W per core).
CPU_WATTS_PER_CORE = Sourced(
    12.0, "W/core", "Green Algorithms calculator default for an unlisted CPU (Lannelongue et al. 2021, TDP_cpu.csv 'Any')", 2021
)


# ---------------------------------------------------------------------------- relatable equivalents
# What a forecast's kWh and CO2 amount to in everyday terms (papers/004 XIV.A, C.3). Written from the
# cited publications; check a value against its source before quoting it outside a comparison.


@dataclass(frozen=True)
class Equivalent:
    """One everyday quantity: ``per_unit`` of ``basis`` (kWh or kg CO2) makes one ``unit``."""

    key: str
    unit: str  # e.g. "round-trip flights NY-SF (one passenger)"
    basis: str  # "kwh" or "co2_kg"
    per_unit: Sourced


EQUIVALENTS: dict[str, Equivalent] = {
    "flights_ny_sf": Equivalent(
        "flights_ny_sf",
        "round-trip flights New York-San Francisco (one passenger)",
        "co2_kg",
        Sourced(900.0, "kg CO2e", "Strubell et al. 2019, Table 1: air travel, 1 passenger, NY<->SF, 1,984 lbs", 2019),
    ),
    "household_years": Equivalent(
        "household_years",
        "years of an average US household's electricity",
        "kwh",
        Sourced(10791.0, "kWh/year", "US EIA, average annual electricity use of a US residential customer, 2022", 2022),
    ),
    "car_km": Equivalent(
        "car_km",
        "km driven by an average US passenger car",
        "co2_kg",
        Sourced(0.2485, "kg CO2/km", "US EPA, typical passenger vehicle ~400 g CO2 per mile (22.2 mpg, 8,887 g/gallon)", 2023),
    ),
}

# Annual emissions of a country (or the world), for "share of a country's annual emissions".
COUNTRY_ANNUAL_CO2_KG: dict[str, Sourced] = {
    "us": Sourced(6.343e12, "kg CO2e/year", "US EPA Inventory of U.S. Greenhouse Gas Emissions and Sinks, gross 2022", 2022),
    "germany": Sourced(6.73e11, "kg CO2e/year", "Umweltbundesamt, German greenhouse gas emissions 2023", 2023),
    "world": Sourced(3.68e13, "kg CO2/year", "Global Carbon Budget 2023, fossil CO2 emissions 2023 (projected)", 2023),
}
COUNTRY_DEFAULT = "us"
COUNTRY_NAMES = {"us": "the United States'", "germany": "Germany's", "world": "the world's"}


def equivalents(kwh: float | None, co2_kg: float | None, *, country: str = COUNTRY_DEFAULT) -> dict[str, float]:
    """A kWh and CO2 figure told as flights, household-years, car-km and a share of a country's emissions.

    Keys: the `EQUIVALENTS` keys and ``"share_<country>"`` (a fraction, not a percentage). A key is
    missing when the figure it rests on is None.
    """
    if country not in COUNTRY_ANNUAL_CO2_KG:
        raise ValueError(f"unknown country {country!r}; choose one of {sorted(COUNTRY_ANNUAL_CO2_KG)}")
    out: dict[str, float] = {}
    for key, eq in EQUIVALENTS.items():
        value = kwh if eq.basis == "kwh" else co2_kg
        if value is not None:
            out[key] = value / eq.per_unit.value
    if co2_kg is not None:
        out[f"share_{country}"] = co2_kg / COUNTRY_ANNUAL_CO2_KG[country].value
    return out


def describe_equivalents(values: dict[str, float], *, country: str = COUNTRY_DEFAULT) -> str:
    """One line such as "= 0.12 round-trip flights ...; 3.4 km driven ...; 1.2e-9 of US annual emissions"."""
    parts = []
    for key, eq in EQUIVALENTS.items():
        if key in values and values[key] >= MIN_EQUIVALENT:
            parts.append(f"{values[key]:.3g} {eq.unit}")
    share = values.get(f"share_{country}")
    if share is not None and share >= MIN_EQUIVALENT:
        parts.append(f"{share:.3g} of {COUNTRY_NAMES.get(country, country)} annual emissions")
    return "; ".join(parts)


# An equivalent below a thousandth of its unit ("9.61e-21 of the United States' annual emissions") is noise.
MIN_EQUIVALENT = 1e-3


# Measured here (REFERENCE.md section 6, one H100 80GB, torch 2.11): bf16 8192^3 matmul.
H100_MEASURED_BF16_MATMUL_TFLOPS = Sourced(793.0, "TFLOP/s", "measured: 8192^3 bf16 matmul on one H100 80GB (REFERENCE.md s.6)", 2026)


def grid_intensity(preset: str) -> Sourced:
    """The grid-intensity preset by name; unknown names list the presets."""
    try:
        return GRID_INTENSITY[preset]
    except KeyError:
        raise ValueError(f"unknown grid preset {preset!r}; choose one of {sorted(GRID_INTENSITY)} or give co2_g_per_kwh") from None


def gpu_spec(name: str) -> GPUSpec:
    """A GPU's datasheet figures by short name (h100, a100, ...)."""
    key = name.lower().replace("nvidia", "").replace("-", "").replace(" ", "")
    for short, spec in GPUS.items():
        if key.startswith(short):
            return spec
    raise ValueError(f"unknown GPU {name!r}; choose one of {sorted(GPUS)} or give peak FLOP/s explicitly")
