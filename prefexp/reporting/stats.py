"""Small-sample statistics for the report: mean, a t-based 95 % confidence interval, paired differences.

Seeds are few (2-5), so the interval uses Student's t with n-1 degrees of freedom, not 1.96:

    mean = sum(x) / n,  sd = sqrt(sum((x - mean)^2) / (n - 1)),  half_width = t_{0.975, n-1} * sd / sqrt(n)

With n = 1 there is no spread to estimate: the half-width is NaN (shown as "n=1", never as 0).
A paired difference (arm - baseline, matched on seed, or on prompt when results carry per-prompt
scores) is "beyond noise" when its 95 % interval excludes 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# t_{0.975, df} for df = 1..30 (scipy.stats.t.ppf(0.975, df), 6 decimals); larger df: Cornish-Fisher.
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)
_Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """Two-sided 95 % critical value of Student's t (error < 1e-5 for df > 30)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975  # Cornish-Fisher expansion of the t quantile around the normal one
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3))


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # 95 % CI = mean +- half_width (NaN when n < 2)
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 4) -> str:
        if self.n == 0:
            return ""
        if self.n == 1 or math.isnan(self.half_width):
            return f"{self.mean:.{digits}g} (n=1)"
        if self.half_width == 0:  # every seed gave the same number: no spread was measured, not a certainty
            return f"{self.mean:.{digits}g} ± 0 (identical)"
        return f"{self.mean:.{digits}g} ± {self.half_width:.2g}"


def mean_ci(values: Sequence[float]) -> Estimate:
    """Mean and t-based 95 % CI of finite ``values`` (NaN and None are left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n == 1:
        return Estimate(mean, math.nan, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Estimate(mean, t_quantile_975(n - 1) * sd / math.sqrt(n), n)


def paired_difference(arm: dict, baseline: dict) -> Estimate:
    """Mean and CI of arm[k] - baseline[k] over the keys (seeds, prompts) both have."""
    keys = [k for k in arm if k in baseline]
    return mean_ci([arm[k] - baseline[k] for k in keys])
