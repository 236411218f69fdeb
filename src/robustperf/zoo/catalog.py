"""The RobustBench zoo models robustperf builds itself: name -> architecture, per data set and threat model.

RobustBench (Croce et al. 2021) names each model and keeps its checkpoint at
``<model_dir>/<dataset>/<threat_model>/<name>.pt``. The entries here are the models whose architecture is
robustperf's own WideResNet (the TRADES-style WRN that RobustBench builds with
``WideResNet(depth, widen_factor, sub_block1)``, with inputs in [0, 1] and no normalisation inside), with
the Google Drive id RobustBench downloads them from. `ZOO` is a registry: a user adds another
architecture with ``ZOO.register(...)`` or the ``robustperf.zoo`` entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass

from robustperf.registry import Registry

DATASETS = ("cifar10", "cifar100", "imagenet")
THREAT_MODELS = ("Linf", "L2", "corruptions")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model robustperf can build.

    Attributes:
        name: RobustBench's model name (e.g. "Carmon2019Unlabeled").
        dataset: cifar10 | cifar100 | imagenet.
        threat_model: Linf | L2 | corruptions.
        depth: WideResNet depth.
        width: WideResNet widen factor.
        sub_block1: the checkpoint holds RobustBench's unused ``sub_block1`` (dropped on load).
        gdrive_id: Google Drive file id of the checkpoint (None: no download known).
        eps: the leaderboard's radius for this threat model (pixel units).
    """

    name: str
    dataset: str
    threat_model: str
    depth: int
    width: int
    sub_block1: bool = False
    gdrive_id: str | None = None
    eps: float | None = None

    @property
    def key(self) -> str:
        return zoo_key(self.name, self.dataset, self.threat_model)

    @property
    def architecture(self) -> str:
        return f"WideResNet-{self.depth}-{self.width}"

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.dataset]


def zoo_key(name: str, dataset: str, threat_model: str) -> str:
    """The registry key of a zoo model: ``cifar10/Linf/Carmon2019Unlabeled``."""
    return f"{dataset}/{threat_model}/{name}"


ZOO: Registry[ZooEntry] = Registry("zoo model", group="robustperf.zoo")

_LINF = 8 / 255
_L2 = 0.5
# (name, threat model, depth, width, sub_block1, Google Drive id): CIFAR-10 entries of RobustBench 1.1.1's model zoo
_CIFAR10 = [
    ("Standard", "Linf", 28, 10, False, "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC"),
    ("Carmon2019Unlabeled", "Linf", 28, 10, True, "15tUx-gkZMYx7BfEOw1GY5OKC-jECIsPQ"),
    ("Sehwag2020Hydra", "Linf", 28, 10, True, "1pi8GHwAVkxVH41hEnf0IAJb_7y-Q8a2Y"),
    ("Wang2020Improving", "Linf", 28, 10, True, "1T939mU4kXYt5bbvM55aT4fLBvRhyzjiQ"),
    ("Wu2020Adversarial_extra", "Linf", 28, 10, True, "1-WJWpAZLlmc4gJ8XXNf7IETjnSZzaCNp"),
    ("Zhang2020Geometry", "Linf", 28, 10, True, "1UoG1JhbAps1MdMc6PEFiZ2yVXl_Ii5Jk"),
    ("Sridhar2021Robust", "Linf", 28, 10, True, "1muDMpOyRlgJ7n2rhS2NpfFGp3rzjuIu0"),
    ("Zhang2019Theoretically", "Linf", 34, 10, True, "1hPz9QQwyM7QSuWu-ANG_uXR-29xtL8t_"),
    ("Huang2020Self", "Linf", 34, 10, True, "1nInDeIyZe2G-mJFxQJ3UoclQNomWjMgm"),
    ("Zhang2019You", "Linf", 34, 10, True, "1kB2qqPQ8qUNmK8VKuTOhT1X4GT46kAoA"),
    ("Zhang2020Attacks", "Linf", 34, 10, True, "1lBVvLG6JLXJgQP2gbsTxNHl6s3YAopqk"),
    ("Sitawarin2020Improving", "Linf", 34, 10, True, "12teknvo6dQGSWBaGnbNFwFO3-Y8j2eB6"),
    ("Cui2020Learnable_34_10", "Linf", 34, 10, True, "16s9pi_1QgMbFLISVvaVUiNfCzah6g2YV"),
    ("Cui2020Learnable_34_20", "Linf", 34, 20, True, "1y7BUxPhQjNlb4w4BUlDyYJIS4w4fsGiS"),
    ("Sridhar2021Robust_34_15", "Linf", 34, 15, True, "1-3ii3GX93YqIcmJ3VNsOgYA7ecdnSZ0Z"),
    ("Chen2021LTD_WRN34_10", "Linf", 34, 10, False, "1-0RoQKYvHLNh7hZ71wJjSit1XtrJQo9D"),
    ("Chen2021LTD_WRN34_20", "Linf", 34, 20, False, "1-5JmY9rapuGwCUc2nPvy7Rb_sn_dHhFm"),
    ("Standard", "L2", 28, 10, False, "1t98aEuzeTL8P7Kpd5DIrCoCL21BNZUhC"),
]
for _name, _tm, _depth, _width, _sb1, _gid in _CIFAR10:
    _entry = ZooEntry(_name, "cifar10", _tm, _depth, _width, _sb1, _gid, _LINF if _tm == "Linf" else _L2)
    ZOO.register(_entry.key, _entry)


def find_entry(name: str, dataset: str = "cifar10", threat_model: str = "Linf") -> ZooEntry:
    """The catalogue entry of a zoo model.

    Raises:
        RegistryError: unknown name (the message lists the models robustperf can build, with a close match).
        ValueError: an unknown data set or threat model.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    if threat_model not in THREAT_MODELS:
        raise ValueError(f"unknown threat model {threat_model!r}: use one of {', '.join(THREAT_MODELS)}")
    return ZOO.get(zoo_key(name, dataset, threat_model))


__all__ = ["DATASETS", "NUM_CLASSES", "THREAT_MODELS", "ZOO", "ZooEntry", "find_entry", "zoo_key"]
