"""The Sinkhorn divergence and its debiased map, against GeomLoss (whose default loss it is)."""

from __future__ import annotations

import pytest
import torch
from geomloss import SamplesLoss

from otkit.divergence import sinkhorn_divergence


def _clouds(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 2, generator=g, dtype=torch.float64)
    y = 0.7 * torch.randn(250, 2, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.5], dtype=torch.float64)
    return x, y


def _geomloss(x, y, eps, scaling):
    """GeomLoss's debiased Sinkhorn loss (p = 2: cost ½‖x − y‖², ε = blur²) and its gradient in x."""
    xg = x.clone().requires_grad_(True)
    loss = SamplesLoss("sinkhorn", p=2, blur=eps**0.5, scaling=scaling, debias=True,
                       backend="tensorized")(xg, y)
    (grad,) = torch.autograd.grad(loss, xg)
    return loss.item(), grad


def test_value_and_map_match_geomloss():
    x, y = _clouds()
    eps = 0.1
    div = sinkhorn_divergence(x, y, epsilon=eps, tol=1e-10, max_iter=50_000)
    assert div.converged and div.epsilon == eps
    mapped = div.transport(x)
    errors = []
    for scaling in (0.99, 0.999):
        value, grad = _geomloss(x, y, eps, scaling)
        assert div.value().item() == pytest.approx(value, rel=1e-4)
        # ∂S/∂x_i = a_i (∇f_xy − ∇f_xx)(x_i) with a_i = 1/n: the debiased map is x − n ∂S/∂x
        errors.append((mapped - (x - len(x) * grad)).abs().max().item())
    # GeomLoss's own error shrinks with its annealing; ours is the limit it approaches
    assert errors[1] < 0.2 * errors[0] and errors[1] < 1e-2


def test_divergence_vanishes_on_equal_clouds_and_the_map_is_then_the_identity():
    x, _ = _clouds(1)
    div = sinkhorn_divergence(x, x.clone(), relative_epsilon=0.05, tol=1e-8, max_iter=20_000)
    assert abs(div.value().item()) < 1e-6
    torch.testing.assert_close(div.transport(x[:20]), x[:20], atol=1e-5, rtol=0)


def test_debiasing_removes_the_entropic_maps_shrinkage_of_a_translation():
    # y = x + δ (the same cloud moved): the entropic map of a large ε pulls points towards the
    # target's mean; the debiased map x + T_xy(x) − T_xx(x) recovers the translation.
    x, _ = _clouds(2)
    delta = torch.tensor([2.0, -1.0], dtype=torch.float64)
    div = sinkhorn_divergence(x, x + delta, epsilon=1.0, tol=1e-9, max_iter=20_000)
    biased = (div.xy.transport(x) - x - delta).norm(dim=1).mean().item()
    debiased = (div.transport(x) - x - delta).norm(dim=1).mean().item()
    assert debiased < 1e-6 < 0.1 < biased


def test_bad_inputs_are_named():
    x, y = _clouds()
    with pytest.raises(ValueError, match="rho_a"):
        sinkhorn_divergence(x, y, rho_a=1.0)
    div = sinkhorn_divergence(x, y, cost="dot", epsilon=1.0)
    with pytest.raises(TypeError, match="TranslationInvariantCost"):
        div.transport(x)
    with pytest.raises(ValueError, match="x_new"):
        sinkhorn_divergence(x, y).transport(torch.zeros(3, 5, dtype=torch.float64))
