"""Which sweep axes a run actually reads: an axis a loss ignores must not be drawn as a curve.

``tau`` changes a run only through the router's cut (threshold, quantile, random) when one side
of the cut gets a different treatment than the other (discard, weight, or ``route`` for a loss
that routes pairs), or through a loss that reads it itself (``uses_tau``). DPO with router=none
trained at tau=0.5 and tau=1.0 is the same run twice: the report draws it as a flat reference
line and pools it over tau only once per seed.
"""
from __future__ import annotations

from typing import Any, Optional

TAU_ROUTERS = ("threshold", "quantile", "random")


def _loss_flags(target: Any) -> Optional[tuple[bool, bool]]:
    """(uses_tau, routes_pairs) class flags of the loss ``_target_`` (None if it cannot be imported)."""
    if not isinstance(target, str):
        return None
    try:
        from hydra.utils import get_class

        cls = get_class(target)
    except Exception:  # noqa: BLE001 - a report must work on run dirs of other code versions
        return None
    return bool(getattr(cls, "uses_tau", False)), bool(getattr(cls, "routes_pairs", False))


def _loss_flags_of(config: dict) -> Optional[tuple[bool, bool]]:
    if not isinstance(config, dict) or not isinstance(config.get("loss"), dict):
        return None
    return _loss_flags(config["loss"].get("_target_"))


def router_is_used(config: Optional[dict]) -> bool:
    """True unless the config shows that its router cannot change the run: router=none, or both
    sides of the cut get the same treatment (DPO with router.on_selected=route, say)."""
    flags = _loss_flags_of(config)
    if flags is None:
        return True  # unknown: keep it
    router = config.get("router") or {}
    if router.get("name") in (None, "none"):
        return False
    sides = [(router.get("on_selected", "route"), router.get("selected_weight", 1.0)),
             (router.get("on_rest", "preference"), router.get("rest_weight", 1.0))]
    effects = set()
    for action, weight in sides:
        if action == "route":
            effects.add("route" if flags[1] else "preference")
        elif action == "weight":
            effects.add(("weight", float(weight)) if float(weight) != 1.0 else "preference")
        else:
            effects.add(action)
    return len(effects) > 1


def tau_is_used(config: Optional[dict]) -> bool:
    """False only when the run's ``.hydra/config.yaml`` shows that tau cannot change it."""
    flags = _loss_flags_of(config)
    if flags is None:
        return True  # unknown: keep tau as an axis
    if flags[0]:
        return True
    return (config.get("router") or {}).get("name") in TAU_ROUTERS and router_is_used(config)
