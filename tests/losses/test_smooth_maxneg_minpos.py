"""Smooth MaxNeg-MinPos (methods.md 3.6, blog smoothing with its sign errors corrected).

Hand values: a+ = [-1, -3], a- = [-1.5, -4].
- t = 10: SmoothMin(a+) = -3.000000, SmoothMax(a-) = -1.500000, gap -1.500000 (within 1e-6).
- t = 1: SmoothMin = -3.126928, SmoothMax = -1.421110, gap = -1.705818; L = sp(1.705818).
- Regression: the blog's literal form SmoothMax(neg) - SmoothMax(pos) gives -0.548038 at t = 1.
- LSE bounds on A = [1, 2, 3]: t = 1: SmoothMax 3.407606, SmoothMin 0.592394, error 0.407606 <=
  tight bound log(1 + 2 e^-1) = 0.551445 <= log 3 = 1.098612; t = 10: SmoothMax 3.000005.
- With one positive and one negative, smooth equals hard for every t.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from prefexp.losses.maxneg_minpos import MaxNegMinPosLoss
from prefexp.losses.smooth_maxneg_minpos import (SmoothMaxNegMinPosLoss, lse_error_bound, min_temperature,
                                                 smooth_max, smooth_min)

from .cases import close, random_pairs
from .test_maxneg_minpos import SANITY, group

F64 = torch.float64
POS, NEG = torch.tensor([[-1.0, -3.0]], dtype=F64), torch.tensor([[-1.5, -4.0]], dtype=F64)
ALL = torch.ones(1, 2, dtype=torch.bool)


def test_t10_is_hard():
    close(smooth_min(POS, ALL, 10.0), [-3.0])
    close(smooth_max(NEG, ALL, 10.0), [-1.5])
    close(SmoothMaxNegMinPosLoss(t=10.0)(**group(**SANITY)).metrics["smooth_maxneg_minpos/gap"], -1.5)


def test_t1_values():
    close(smooth_min(POS, ALL, 1.0), [-3.126928])
    close(smooth_max(NEG, ALL, 1.0), [-1.421110])
    out = SmoothMaxNegMinPosLoss(t=1.0)(**group(**SANITY))
    close(out.metrics["smooth_maxneg_minpos/gap"], -1.705818)
    close(out.loss, F.softplus(torch.tensor(1.705818, dtype=F64)))


def test_regression_against_the_blog_form():
    """The blog subtracts a smooth MAX of the positives, i.e. gap = SmoothMax(neg) - SmoothMax(pos)."""
    blog_gap = smooth_max(NEG, ALL, 1.0) - smooth_max(POS, ALL, 1.0)
    close(blog_gap, [-0.548038])
    ours = SmoothMaxNegMinPosLoss(t=1.0)(**group(**SANITY)).metrics["smooth_maxneg_minpos/gap"]
    assert abs(float(ours) - float(blog_gap)) > 1.0
    assert abs(float(ours) + float(blog_gap)) > 1.0  # nor its sign-flipped twin


def test_lse_bounds():
    a, mask = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64), torch.ones(1, 3, dtype=torch.bool)
    close(smooth_max(a, mask, 1.0), [3.407606])
    close(smooth_min(a, mask, 1.0), [0.592394])
    close(smooth_max(a, mask, 10.0), [3.000005])
    error = float(smooth_max(a, mask, 1.0)) - 3.0
    assert 0 <= error <= lse_error_bound(3, 1.0, delta=1.0) <= lse_error_bound(3, 1.0)
    close(lse_error_bound(3, 1.0, delta=1.0), 0.551445)
    close(lse_error_bound(3, 1.0), math.log(3))
    close(lse_error_bound(4, 10.0), 0.138629)
    close(min_temperature(4, 0.138629), 10.0, atol=1e-4)


@pytest.mark.parametrize("t", [0.1, 1.0, 10.0, 1000.0])
def test_single_pair_equals_hard(t):
    inputs = random_pairs()
    torch.testing.assert_close(SmoothMaxNegMinPosLoss(t=t)(**inputs).losses, MaxNegMinPosLoss()(**inputs).losses)


def test_every_valid_response_gets_gradient_and_masks_are_not_nan():
    inputs = group(logps=[[-1.0, -3.0, -1.5, -4.0, float("nan")]], positive=[[True, True, False, False, False]],
                   mask=[[True, True, True, True, False]], lengths=[[1, 1, 1, 1, 0]])
    out = SmoothMaxNegMinPosLoss(t=1.0)(**inputs)
    (grad,) = torch.autograd.grad(out.loss, inputs["group_logps"])
    assert torch.isfinite(out.loss) and torch.isfinite(grad).all()
    assert (grad[0, :4] != 0).all() and grad[0, 4] == 0


def test_max_bias_check():
    inputs = group(**SANITY)  # K = 4
    SmoothMaxNegMinPosLoss(t=10.0, max_bias=0.139)(**inputs)
    with pytest.raises(ValueError, match=r"loss.t=10.0 is below log\(K\)/max_bias"):
        SmoothMaxNegMinPosLoss(t=10.0, max_bias=0.1)(**inputs)
    with pytest.raises(ValueError, match="loss.max_bias=0"):
        SmoothMaxNegMinPosLoss(max_bias=0.0)
    with pytest.raises(ValueError, match="loss.t=0"):
        SmoothMaxNegMinPosLoss(t=0.0)


def test_row_check_inherited():
    inputs = group(logps=[[-1.0, -2.0], [-1.0, -2.0]], positive=[[True, False], [False, False]])
    with pytest.raises(ValueError, match="row 1 has no valid positive"):
        SmoothMaxNegMinPosLoss()(**inputs)
