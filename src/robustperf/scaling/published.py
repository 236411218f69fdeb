"""Published scaling laws, shipped as data with their sources (REFERENCE.md section 4).

Plain data: `robustperf.scaling.catalogue` registers each entry of `PUBLISHED` under its paper name, so
``create_law("bartoldson2024_approach2")`` returns the law (keyword arguments override single fields).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from robustperf.scaling.laws import Approach2Law, Approach3Law, LinearMap, PowerLaw

_B24 = "Bartoldson et al. 2024 (papers/001)"

# Approach 2, the authors' notebook fit printed at the reference FID 1.65 (unrounded). These reproduce
# every end-to-end anchor of REFERENCE.md s.4 (accuracy at 1e30 FLOPs, N*, D* at 1e21, ceiling 0.89652).
BARTOLDSON2024_APPROACH2_FID165 = Approach2Law(
    A=6.686980, B=7.551689, E=0.560373, alpha=0.244345, beta=0.228146, eps=0.155524, zeta=-0.276774,
    fid_ref=1.65, source=f"{_B24}, authors' notebook: Approach 2 fit with B, E at FID 1.65 (REFERENCE.md s.4)",
)

# The same law in the paper's convention (B, E at FID 0), converted exactly from the notebook values.
BARTOLDSON2024_APPROACH2 = replace(
    BARTOLDSON2024_APPROACH2_FID165.at_reference(0.0),
    source=f"{_B24}, App. F.2.1: Approach 2, notebook values converted to FID 0 (B = 9.89, E = 0.48 rounded)",
)

# The rounded values printed in App. F.2.1 (FID 0 convention).
BARTOLDSON2024_APPROACH2_ROUNDED = Approach2Law(
    A=6.69, B=9.89, E=0.48, alpha=0.24, beta=0.23, eps=0.16, zeta=-0.28, fid_ref=0.0,
    source=f"{_B24}, App. F.2.1: rounded Approach 2 parameters (FID 0 convention)",
)

# Approach 3, unrounded notebook values; L(1e8, 1e8, FID 1.65) = 0.74586 (REFERENCE.md s.4).
BARTOLDSON2024_APPROACH3 = Approach3Law(
    A=6.00080741, B=7000.0, E=0.515022255, Q=0.00659350845, alpha=0.241841188, beta=0.217406245,
    kappa=0.604209556, eps=0.0357334903,
    source=f"{_B24}, authors' notebook: Approach 3 unrounded fit (App. F.3.1 prints the rounded one)",
)

BARTOLDSON2024_APPROACH3_ROUNDED = Approach3Law(
    A=6.0, B=7000.0, E=0.52, Q=0.007, alpha=0.24, beta=0.22, kappa=0.6, eps=0.04,
    source=f"{_B24}, App. F.3.1: rounded Approach 3 parameters",
)

# Adversarial loss -> AutoAttack accuracy (fraction), R^2 = 0.98 on DG runs at their minimum loss.
BARTOLDSON2024_LOSS_TO_ACCURACY = LinearMap(
    slope=-0.7496, intercept=1.2575, source=f"{_B24}, App. F.2.2: accuracy = -0.7496 L + 1.2575 (R^2 = 0.98)",
)

# Debenedetti et al. 2023 (papers/002 Sec. 3.2): best-run envelope, 19 FLOPs bins, least squares in log-log.
DEBENEDETTI2023_POWERLAW = PowerLaw(
    C=50.86, alpha=0.01, x_unit="TFLOP (results.csv train_flops x epochs)", y_unit="AutoAttack accuracy (%)",
    source="Debenedetti et al. 2023 (papers/002) Sec. 3.2: AutoAttack accuracy = 50.86 FLOPs^0.01, R^2 = 0.76",
)

DEBENEDETTI2023_COST_POWERLAW = PowerLaw(
    C=7.0e-6, alpha=0.95, x_unit="TFLOP (results.csv train_flops x epochs)", y_unit="electricity cost (USD) / CO2",
    source="Debenedetti et al. 2023 (papers/002) Sec. 3.2: electricity cost and CO2 = 7.0e-6 FLOPs^0.95, R^2 = 0.95",
)

PUBLISHED: dict[str, Any] = {
    "bartoldson2024_approach2": BARTOLDSON2024_APPROACH2,
    "bartoldson2024_approach2_fid1.65": BARTOLDSON2024_APPROACH2_FID165,
    "bartoldson2024_approach2_rounded": BARTOLDSON2024_APPROACH2_ROUNDED,
    "bartoldson2024_approach3": BARTOLDSON2024_APPROACH3,
    "bartoldson2024_approach3_rounded": BARTOLDSON2024_APPROACH3_ROUNDED,
    "bartoldson2024_loss_to_accuracy": BARTOLDSON2024_LOSS_TO_ACCURACY,
    "debenedetti2023_powerlaw": DEBENEDETTI2023_POWERLAW,
    "debenedetti2023_cost_powerlaw": DEBENEDETTI2023_COST_POWERLAW,
}
