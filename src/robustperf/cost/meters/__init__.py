"""Energy meters: joules and seconds over a window of work (an epoch, an evaluation), one meter a file.

REFERENCE.md section 3 ("Energy"): the best primitive on Volta and newer GPUs is NVML's total-energy
counter (`nvml`). GPUs without the counter fall back to sampling NVML's power draw on a thread and
integrating it (`sampling`). NVML ignores ``CUDA_VISIBLE_DEVICES``, so devices are mapped by UUID
(`nvml_lib`). Windows should be >= 1 s; in DDP every rank meters its own GPU and `sum_across_ranks` adds
the joules.

Usage::

    meter = create_meter("auto")
    meter.start()
    ...  # one epoch
    reading = meter.stop()  # EnergyReading(joules=..., seconds=..., source="nvml")

Without an NVIDIA GPU, ``auto`` reads the CPU's RAPL counters (`rapl`). Where no counter can be read (many
VMs, or ``energy_uj`` readable by root only since Linux 5.10), it falls back to an *estimate* (`estimate`,
`cpu_time`): a stated power (``watts``, ``cost.watts``) or the hardware's rated power (GPU datasheet TDP;
CPU: 12 W per core times the process's CPU time, Green Algorithms' default), as codecarbon does when it has
no counter. An estimate's ``source`` starts with ``"estimate:"`` and says what power it assumed and why, and
that string is what the run record stores; `energy_method` maps a source to metered / estimated / none.

Every meter satisfies `base.EnergyMeter` (``start``/``read``/``stop`` -> `base.EnergyReading`), the shape
`robustperf.store.session` expects. A new meter is one module here with a ``build(device_index=None,
...)`` factory (give it a ``watts`` parameter to be handed the stated power) and its line below; a meter
that measures also adds its source to `base.METERED_SOURCES`. Installed packages add meters through the
``robustperf.meters`` entry-point group.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from robustperf.cost.meters import auto, estimate, fake, none, nvml, rapl, sampling
from robustperf.cost.meters.base import ENERGY_METERS, EnergyMeter, EnergyMeterError

# the registrations, all in one place: name -> factory(device_index=None, **options)
ENERGY_METERS.register("none", none.build)
ENERGY_METERS.register("fake", fake.build)
ENERGY_METERS.register("nvml", nvml.build)
ENERGY_METERS.register("sampling", sampling.build)
ENERGY_METERS.register("rapl", rapl.build)
ENERGY_METERS.register("estimate", estimate.build)
ENERGY_METERS.register("auto", auto.build)


def create_meter(
    name: str = "auto", *, device_index: int | None = None, watts: float | None = None, **kwargs: Any
) -> EnergyMeter:
    """Build an energy meter by name: "auto", "nvml", "sampling", "rapl", "estimate", "fake" or "none".

    Construction does no work; "nvml", "sampling" and "rapl" touch the hardware in ``start()``
    ("auto" probes NVML and the powercap tree here to decide; "nvml" checks that pynvml imports).

    Args:
        name: meter name (``cost.energy_meter`` in the run config).
        device_index: logical CUDA index to meter (None: device 0 / torch's current device).
        watts: stated mean power for "estimate" (and for "auto" when it falls back to an estimate;
            "fake" draws it): handed to every meter whose factory has a ``watts`` parameter; meters that
            measure ignore it.
        **kwargs: meter options, e.g. ``interval_s`` for "sampling", ``powercap_root`` for "rapl"/"auto".
    """
    factory = ENERGY_METERS.get(name)
    if watts is not None and _takes_watts(factory):
        kwargs["watts"] = watts
    try:
        return factory(device_index=device_index, **kwargs)
    except TypeError as exc:
        raise EnergyMeterError(f"energy meter {name!r}: bad option in {sorted(kwargs)} ({exc})") from None


def _takes_watts(factory: Callable[..., EnergyMeter]) -> bool:
    """Whether a factory names a ``watts`` parameter (a stated power is meaningless to the others)."""
    try:
        return "watts" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): hand it nothing extra
        return False


__all__ = ["ENERGY_METERS", "create_meter"]
