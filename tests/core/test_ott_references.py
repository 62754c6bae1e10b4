"""otkit's entropic map against OTT-JAX's on the same problem (values stored with provenance).

OTT-JAX is a benchmark-only extra, absent from CI: tests/fixtures/ott/generate.py ran it once
and stored its inputs and outputs. Its squared Euclidean cost is ‖x − y‖², twice otkit's, so
it ran at twice otkit's ε; the couplings, hence the potentials, are the same.

A pitfall found here: with a weighted target, OTT-JAX 0.6.0's
``to_dual_potentials().transport`` weighs target j by b_j² exp((g_j − c(x, y_j))/ε) instead of
b_j exp(...) (METHODS.md, "Sinkhorn and the entropic map": p_j(x) ∝ b_j exp(...)). With
uniform weights the extra factor cancels; here it moves the map by up to 0.03.
"""

import ot
import torch
from _ott_references import ott_references, tensor

from otkit import sinkhorn


def _problem():
    ref = ott_references()["entropic_map"]
    assert ref["converged"]
    x, y, b, x_test = (tensor(ref[k]) for k in ("x", "y", "b", "x_test"))
    fit = sinkhorn(x, y, b=b, epsilon=ref["epsilon"], tol=1e-10, max_iter=50_000)
    assert fit.converged
    return ref, fit, y, b, x_test


def _weighted_map(x_test, y, b, g, epsilon, power):
    """Σ_j p_j(x) y_j with p_j ∝ b_j^power exp((g_j − ½‖x − y_j‖²)/ε), ``[k, d]``."""
    cost = 0.5 * torch.cdist(x_test, y) ** 2
    return torch.softmax(power * b.log() + (g - cost) / epsilon, dim=1) @ y


def test_entropic_map_is_the_weighted_barycentric_projection_of_pots_potentials():
    """The map written from POT's converged potentials (the paper's p_j ∝ b_j exp(...))."""
    ref, fit, y, b, x_test = _problem()
    eps = ref["epsilon"]
    x = tensor(ref["x"])
    a = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64)
    _, log = ot.bregman.sinkhorn_log(a, b, ot.dist(x, y), 2 * eps, numItermax=100_000,
                                     stopThr=1e-13, log=True)
    g_pot = eps * (log["log_v"] - b.log())  # POT: P = u e^(−M/2ε) v = a b exp((f + g − C)/ε)
    mapped = fit.transport(x_test)
    torch.testing.assert_close(mapped, _weighted_map(x_test, y, b, g_pot, eps, 1), rtol=0,
                               atol=1e-8)
    assert (mapped - x_test).norm(dim=1).mean() > 0.3  # a real displacement


def test_potentials_match_ott_jax_and_its_map_counts_target_weights_twice():
    ref, fit, y, b, x_test = _problem()
    theirs = tensor(ref["transport"])
    # otkit's potential g reproduces OTT's map exactly once b enters squared ...
    torch.testing.assert_close(_weighted_map(x_test, y, b, fit.g, ref["epsilon"], 2), theirs,
                               rtol=0, atol=1e-6)
    # ... so OTT's map is not the entropic map: the pitfall otkit does not repeat
    assert (fit.transport(x_test) - theirs).abs().max() > 0.01
