"""What the two spheres-only audits share: the radii, the exact oracle, the colours.

Both only make sense on the adversarial spheres, where the oracle is exact:
``misaligned`` (:mod:`invaudit.attacks.misaligned`, Example 6 of the paper) and
``boundary`` (:mod:`invaudit.attacks.boundary`, Figure 3).
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import AuditContext
from .oracle import Oracle, SpheresOracle

__all__ = ["COLOURS", "check_positive", "require_spheres", "sphere_radii", "spheres_oracle"]

#: Decision 0 (inner) and decision 1 (outer) in every spheres figure.
COLOURS = ("#9ecae1", "#fdae6b")


def require_spheres(ctx: AuditContext, method: str) -> None:
    if ctx.data.name != "spheres":
        raise ConfigError(
            f"{method} applies to the adversarial spheres only; "
            f"this model was trained on {ctx.data.name}"
        )


def sphere_radii(ctx: AuditContext) -> tuple[float, float]:
    """(R1, R2) as the checkpoint's dataset record states them."""
    r1, r2 = ctx.data.info.get("options", {}).get("radii", (1.0, 10.0))
    return float(r1), float(r2)


def spheres_oracle(ctx: AuditContext, radii: tuple[float, float]) -> Oracle:
    """The audit's oracle, else the exact one for these radii."""
    return ctx.oracle if ctx.oracle is not None else SpheresOracle(radii)


def check_positive(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer of at least {minimum}, got {value!r}")
