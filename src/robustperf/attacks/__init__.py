"""Adversarial attacks: PGD, APGD-CE, APGD-T, FAB-T, Square and the AutoAttack cascade.

``import robustperf.attacks`` registers every attack in `ATTACKS`; build one with `create_attack`.
See `robustperf.attacks.base` for the protocol.
"""

from robustperf.attacks import (  # noqa: F401  (import registers: pgd, apgd-*, square, fab-t, autoattack)
    apgd,
    autoattack,
    fab,
    pgd,
    square,
)
from robustperf.attacks.base import (
    ATTACKS,
    Attack,
    AttackCall,
    AttackConfig,
    AttackConfigError,
    AttackResult,
    BaseAttack,
    ForwardCounter,
    create_attack,
)
from robustperf.attacks.pgd import pgd_perturb

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackConfig",
    "AttackConfigError",
    "AttackCall",
    "AttackResult",
    "BaseAttack",
    "ForwardCounter",
    "create_attack",
    "pgd_perturb",
]
