"""Policy: the knowledge base's thresholds with a deployment's or a site's overrides applied.

A number the clinical reference marks as policy (and every other threshold) may be moved,
but only within the bounds the knowledge base declares for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from knowledge.kb import Threshold


class PolicyError(ValueError):
    """An override names an unknown threshold or leaves its allowed bounds."""


class Policy:
    """Threshold values by name: `policy["freshness_days"]`."""

    def __init__(self, thresholds: Mapping[str, Threshold], overrides: Mapping[str, float] = ()):
        self.thresholds = dict(thresholds)
        self._values = {name: t.default for name, t in self.thresholds.items()}
        self.overridden: dict[str, float] = {}
        for name, value in dict(overrides).items():
            threshold = self.thresholds.get(name)
            if threshold is None:
                known = ", ".join(sorted(self.thresholds))
                raise PolicyError(f"unknown threshold {name!r} (known: {known})")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise PolicyError(f"threshold {name!r}: {value!r} is not a number")
            if not threshold.minimum <= value <= threshold.maximum:
                raise PolicyError(
                    f"threshold {name!r}: {value} {threshold.unit} is outside the allowed "
                    f"range {threshold.minimum}-{threshold.maximum} {threshold.unit}"
                )
            self._values[name] = float(value)
            self.overridden[name] = float(value)

    def __getitem__(self, name: str) -> float:
        return self._values[name]

    def days(self, name: str) -> int:
        return int(self._values[name])

    def with_overrides(self, overrides: Mapping[str, float]) -> Policy:
        """This policy with further overrides on top (a site's, over the deployment's)."""
        return Policy(self.thresholds, {**self.overridden, **dict(overrides)})
