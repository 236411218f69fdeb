"""The one error type of `robustperf.scaling`: a user-facing problem with a law or its inputs.

It sits below every other module of the package (laws, results, fitters), so each can raise it without
importing another.
"""

from __future__ import annotations


class ScalingError(ValueError):
    """A user-facing problem with fitting inputs (too few points, bad columns, invalid values)."""
