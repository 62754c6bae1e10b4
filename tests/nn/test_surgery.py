"""Tests of otkit.nn.surgery: Bloop and its siblings against their formulas and a closed form.

References: the paper's equations written out with numpy on flattened vectors, the minimum-norm
least-squares solution pinv(A) b (scipy) and the ridge solution (A^T A + λ I)^{-1} A^T b (scipy).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.linalg
import torch

from otkit.nn import METHODS, GradientSurgery, SurgeryConfig, surgery_direction

SHAPES = [(3, 4), (5,), (2, 2, 2)]


def _params(dtype=torch.float64) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in SHAPES]


def _grads(gen: torch.Generator, scale: float = 1.0, shift: list[torch.Tensor] | None = None):
    g = [scale * torch.randn(s, generator=gen, dtype=torch.float64) for s in SHAPES]
    return g if shift is None else [a + b for a, b in zip(g, shift)]


def _flat(tensors) -> np.ndarray:
    return np.concatenate([t.detach().numpy().ravel() for t in tensors])


def _surgery(method: str, **kwargs) -> GradientSurgery:
    params = _params()
    return GradientSurgery(params, torch.optim.SGD(params, lr=0.1), method=method, **kwargs)


def test_bloop_lambda_part_is_orthogonal_to_the_ema():
    """d − g_m = λ π(g_a; ĝ) ⟂ ĝ at every step, ĝ the EMA after its update (noisy gradients
    around a fixed mean, so ĝ differs from every batch gradient)."""
    gen = torch.Generator().manual_seed(1)
    mean = _grads(gen)
    s = _surgery("bloop", lam=0.7, rho=0.2, delta=0.0)
    for step in range(20):
        gm, ga = _grads(gen, 2.0, mean), _grads(gen)
        d = s.direction(gm, ga)
        part, ema = _flat(d) - _flat(gm), _flat(s.main_ema)
        assert abs(part @ ema) <= 1e-12 * np.linalg.norm(part) * np.linalg.norm(ema)
        if step > 0:  # (at the first step the EMA is the batch gradient)
            # not orthogonal to the batch gradient itself: the EMA is what is projected off
            cosine = part @ _flat(gm) / (np.linalg.norm(part) * np.linalg.norm(_flat(gm)))
            assert abs(cosine) > 1e-3


def test_rho_one_is_per_batch_projection():
    """ρ = 1: ĝ is the current batch's gradient, d = g_m + λ (g_a − ⟨g_a, g_m⟩/‖g_m‖² g_m)."""
    gen = torch.Generator().manual_seed(2)
    lam = 0.3
    s = _surgery("bloop", lam=lam, rho=1.0, delta=0.0)
    for _ in range(5):
        gm, ga = _grads(gen), _grads(gen)
        m, a = _flat(gm), _flat(ga)
        expected = m + lam * (a - (a @ m) / (m @ m) * m)
        np.testing.assert_allclose(_flat(s.direction(gm, ga)), expected, rtol=1e-12, atol=1e-12)


def test_the_ema_starts_at_the_first_main_gradient_and_is_updated_before_use():
    gen = torch.Generator().manual_seed(3)
    rho, lam = 0.25, 0.5
    s = _surgery("bloop", lam=lam, rho=rho, delta=0.0)
    g1, a1 = _grads(gen), _grads(gen)
    s.direction(g1, a1)
    np.testing.assert_allclose(_flat(s.main_ema), _flat(g1))  # not the parameters, not zero
    g2, a2 = _grads(gen), _grads(gen)
    d2 = s.direction(g2, a2)
    ema = _flat(g1) + rho * (_flat(g2) - _flat(g1))
    np.testing.assert_allclose(_flat(s.main_ema), ema, rtol=1e-12)
    a = _flat(a2)
    np.testing.assert_allclose(_flat(d2), _flat(g2) + lam * (a - (a @ ema) / (ema @ ema) * ema),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_rescale_divides_by_one_plus_lambda(method):
    """1 / (1 + λ), not the public code's 1 + λ."""
    gen = torch.Generator().manual_seed(4)
    lam = 3.0
    plain, scaled = _surgery(method, lam=lam, rho=0.5), _surgery(method, lam=lam, rho=0.5, rescale=True)
    for _ in range(3):
        gm, ga = _grads(gen), _grads(gen)
        np.testing.assert_allclose(_flat(scaled.direction(gm, ga)),
                                   _flat(plain.direction(gm, ga)) / (1 + lam), rtol=1e-12)


def test_mixed_is_the_gradient_of_the_sum():
    gen = torch.Generator().manual_seed(5)
    gm, ga = _grads(gen), _grads(gen)
    d = _surgery("mixed", lam=0.4).direction(gm, ga)
    np.testing.assert_allclose(_flat(d), _flat(gm) + 0.4 * _flat(ga), rtol=1e-14)


@pytest.mark.parametrize("method", ["bloop", "mixed", "dynamic_barrier"])
def test_lambda_zero_follows_the_main_gradient(method):
    gen = torch.Generator().manual_seed(6)
    s = _surgery(method, lam=0.0, rho=0.3)
    for _ in range(3):
        gm, ga = _grads(gen), _grads(gen)
        np.testing.assert_allclose(_flat(s.direction(gm, ga)), _flat(gm), rtol=1e-14)


@pytest.mark.parametrize("alignment", [-1.0, 0.2, 5.0])
def test_dynamic_barrier_is_the_papers_formula_without_ema(alignment):
    """ρ = 1, δ = 0: d = μ g_m + λ g_a with μ = max(1 − λ ⟨g_m, g_a⟩/‖g_m‖², 0) (Section 5.1),
    in both regimes (μ > 0, and μ = 0 when g_a points strongly along g_m)."""
    gen = torch.Generator().manual_seed(7)
    lam = 0.5
    gm = _grads(gen)
    ga = [alignment * g + 0.3 * n for g, n in zip(gm, _grads(gen))]
    m, a = _flat(gm), _flat(ga)
    mu = max(1 - lam * (m @ a) / (m @ m), 0.0)
    d = _surgery("dynamic_barrier", lam=lam, rho=1.0, delta=0.0).direction(gm, ga)
    np.testing.assert_allclose(_flat(d), mu * m + lam * a, rtol=1e-12, atol=1e-12)
    if alignment == 5.0:
        assert mu == 0.0


@pytest.mark.parametrize("alignment", [-1.0, 1.0])
def test_pcgrad_is_the_papers_formula_without_ema(alignment):
    """ρ = 1: g_m + λ g_a when the gradients agree, π(g_m; g_a) + λ π(g_a; g_m) when not."""
    gen = torch.Generator().manual_seed(8)
    lam = 0.7
    gm = _grads(gen)
    ga = [alignment * g + 0.3 * n for g, n in zip(gm, _grads(gen))]
    m, a = _flat(gm), _flat(ga)
    if m @ a >= 0:
        expected = m + lam * a
    else:
        expected = (m - (m @ a) / (a @ a) * a) + lam * (a - (a @ m) / (m @ m) * m)
    d = _surgery("pcgrad", lam=lam, rho=1.0, delta=0.0).direction(gm, ga)
    np.testing.assert_allclose(_flat(d), expected, rtol=1e-12, atol=1e-12)


def test_pcgrad_projects_off_both_emas():
    gen = torch.Generator().manual_seed(9)
    lam, rho = 0.7, 0.3
    s = _surgery("pcgrad", lam=lam, rho=rho, delta=0.0)
    em = ea = None
    for _ in range(4):
        gm, ga = _grads(gen), _grads(gen)
        m, a = _flat(gm), _flat(ga)
        em = m if em is None else em + rho * (m - em)
        ea = a if ea is None else ea + rho * (a - ea)
        expected = (m - min(m @ ea / (ea @ ea), 0) * ea) + lam * (a - min(a @ em / (em @ em), 0) * em)
        np.testing.assert_allclose(_flat(s.direction(gm, ga)), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_flat(s.aux_ema), ea, rtol=1e-12)


def _least_squares(seed: int = 0, m: int = 6, p: int = 15):
    """A in R^{m×p} with m < p (a nullspace of dimension p − m), b in R^m."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, p, generator=gen, dtype=torch.float64) / p**0.5
    b = torch.randn(m, generator=gen, dtype=torch.float64)
    return a, b


def _train(method: str, optimizer, lam: float, steps: int, rho: float = 0.1, seed: int = 0):
    a, b = _least_squares(seed)
    w = torch.randn(a.shape[1], generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64).requires_grad_()
    s = GradientSurgery([w], optimizer([w]), method=method, lam=lam, rho=rho)
    for _ in range(steps):
        s.zero_grad()
        s.step(0.5 * ((a @ w - b) ** 2).sum(), 0.5 * (w**2).sum())
    return w.detach().numpy(), a.numpy(), b.numpy()


def test_closed_form_bloop_finds_the_minimum_norm_solution_and_mixed_the_ridge_one():
    """L_main = ½‖A w − b‖² (A wide: a nullspace), L_aux = ½‖w‖²: the bilevel solution is the
    minimum-norm least-squares solution pinv(A) b, which Bloop reaches with a small step
    whatever λ; the mixed method converges to the ridge solution (AᵀA + λI)⁻¹Aᵀb."""
    lam = 1.0
    sgd = functools.partial(torch.optim.SGD, lr=0.01)
    w_bloop, a, b = _train("bloop", sgd, lam, 5000)
    w_mixed, _, _ = _train("mixed", sgd, lam, 5000)
    min_norm = scipy.linalg.pinv(a) @ b
    ridge = scipy.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ b, assume_a="pos")
    gap = np.linalg.norm(min_norm - ridge)
    assert gap > 1.0  # the two answers are far apart
    assert np.linalg.norm(w_bloop - min_norm) < 0.01 * gap
    assert np.linalg.norm(a @ w_bloop - b) < 1e-2  # a minimizer of the main loss
    np.testing.assert_allclose(w_mixed, ridge, atol=1e-8)


def test_the_step_is_the_wrapped_optimizers_step_on_the_direction():
    """Adam (stateful, per-coordinate) over d: the same iterates as Adam fed d by hand."""
    a, b = _least_squares(2)
    w1 = torch.zeros(a.shape[1], dtype=torch.float64, requires_grad=True)
    w2 = w1.detach().clone().requires_grad_()
    s = GradientSurgery([w1], torch.optim.Adam([w1], lr=0.01), method="bloop", lam=0.5, rho=0.1)
    adam = torch.optim.Adam([w2], lr=0.01)
    config, ema = SurgeryConfig("bloop", lam=0.5, rho=0.1), None
    for _ in range(30):
        s.zero_grad()
        s.step(0.5 * ((a @ w1 - b) ** 2).sum(), 0.5 * (w1**2).sum())
        gm = torch.autograd.grad(0.5 * ((a @ w2 - b) ** 2).sum(), w2)[0]
        (d,), ema, _ = surgery_direction(config, [gm], [w2.detach().clone()], ema)
        w2.grad = d
        adam.step()
    torch.testing.assert_close(w1, w2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("optimizer", [
    functools.partial(torch.optim.SGD, lr=0.01), functools.partial(torch.optim.Adam, lr=0.01),
], ids=["sgd", "adam"])
def test_bloop_lowers_the_main_loss_far_below_mixed(optimizer):
    """With SGD or Adam and λ = 1, Bloop trains L_main (to a few 1e-3 or below) where mixed
    training stops at the ridge trade-off (about 1)."""
    lam = 1.0
    main = {}
    for method in ("bloop", "mixed"):
        w, a, b = _train(method, optimizer, lam, 2000)
        main[method] = 0.5 * np.sum((a @ w - b) ** 2)
    assert main["mixed"] > 0.5 and main["bloop"] < main["mixed"] / 5, main


def test_unused_parameters_get_zero_gradients_and_the_factory_builds_the_optimizer():
    w = torch.ones(3, requires_grad=True)
    unused = torch.ones(2, requires_grad=True)
    s = GradientSurgery([w, unused], functools.partial(torch.optim.SGD, lr=0.5), method="bloop",
                        lam=1.0, rho=1.0)
    out = s.step((w**2).sum(), w.sum())
    assert torch.equal(out.direction[1], torch.zeros(2)) and torch.equal(unused, torch.ones(2))
    assert isinstance(s.optimizer, torch.optim.SGD) and s.n_steps == 1
    assert out.main_loss.item() == 3.0 and out.aux_loss.item() == 3.0
    # g_m = 2w, g_a = 1 ∥ g_m: the projection removes all of g_a, d = g_m
    torch.testing.assert_close(out.direction[0], 2 * torch.ones(3))
    torch.testing.assert_close(w.detach(), torch.zeros(3))


def test_state_dict_round_trip_and_reset():
    gen = torch.Generator().manual_seed(10)
    s = _surgery("pcgrad", lam=0.5, rho=0.2)
    for _ in range(3):
        s.direction(_grads(gen), _grads(gen))
    state = s.state_dict()
    t = _surgery("pcgrad", lam=0.5, rho=0.2)
    t.load_state_dict(state)
    gm, ga = _grads(gen), _grads(gen)
    np.testing.assert_allclose(_flat(t.direction(gm, ga)), _flat(s.direction(gm, ga)))
    assert t.n_steps == 4
    t.reset()
    assert t.main_ema is None and t.aux_ema is None
    assert "pcgrad" in repr(t)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"method": "cagrad"}, "method"), ({"rho": 0.0}, "rho"), ({"rho": 1.5}, "rho"),
    ({"rho": -0.1}, "rho"), ({"lam": -1.0}, "lam"), ({"lam": float("inf")}, "lam"),
    ({"delta": -1e-9}, "delta"), ({"lam": float("nan")}, "lam"),
])
def test_bad_config_raises_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SurgeryConfig(**kwargs)
    params = _params()
    with pytest.raises(ValueError, match=name):
        GradientSurgery(params, torch.optim.SGD(params, lr=0.1), **kwargs)


def test_bad_params_raise_naming_the_argument():
    with pytest.raises(ValueError, match="params"):
        GradientSurgery([], functools.partial(torch.optim.SGD, lr=0.1))
    frozen = torch.ones(2)
    with pytest.raises(ValueError, match="params"):
        GradientSurgery([frozen], torch.optim.SGD([torch.ones(2, requires_grad=True)], lr=0.1))
    w, other = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match="not in the optimizer"):
        GradientSurgery([w], torch.optim.SGD([other], lr=0.1))
    s = GradientSurgery([w], torch.optim.SGD([w], lr=0.1))
    with pytest.raises(ValueError, match="grads_main"):
        s.direction([torch.ones(2), torch.ones(2)], [torch.ones(2)])
    with pytest.raises(ValueError, match="grads_aux"):
        s.direction([torch.ones(2)], [torch.ones(3)])
    with pytest.raises(ValueError, match="main_loss"):
        s.step(torch.ones(2), w.sum())
    with pytest.raises(TypeError, match="optimizer"):
        GradientSurgery([w], "adam")


def test_float32_parameters_keep_their_dtype():
    params = _params(torch.float32)
    s = GradientSurgery(params, torch.optim.SGD(params, lr=0.1), method="bloop")
    out = s.step(sum((p**2).sum() for p in params), sum(p.sum() for p in params))
    assert all(d.dtype == torch.float32 for d in out.direction)
    assert all(e.dtype == torch.float32 for e in s.main_ema)
