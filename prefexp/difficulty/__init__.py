"""Difficulty: one margin per pair, a router that marks pairs difficult, a curriculum order."""
from .plan import PlanEntry, make_plan, write_plan

__all__ = ["PlanEntry", "make_plan", "write_plan"]
