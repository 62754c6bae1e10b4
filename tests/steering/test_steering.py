"""Tests of otkit.steering: hooks, per-neuron maps (Linear-AcT), interventions, AcT and LinEAS.

References nobody here wrote: numpy's Hazen quantiles and polyfit (Linear-AcT), closed-form
Gaussian OT, POT's exact solver (1-D W₂²), scipy's minimizer (the sparse-group-lasso prox) and
plain sequential application of maps (compose, steer).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import ot
import pytest
import scipy.optimize
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from otkit.steering import (
    AffineMap,
    Intervention,
    collect_activations,
    compose,
    find_modules,
    fit_act,
    fit_lineas,
    gaussian_map,
    linear_act,
    mean_shift,
    pool,
    sparse_group_prox,
    steer,
    support_coverage,
    wasserstein_1d,
)

pytestmark = pytest.mark.usefixtures("eager_one_thread")

BLOCKS = r"transformer\.h\.\d+"


def tiny_gpt2(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    config = GPT2Config(
        n_embd=16, n_layer=2, n_head=2, vocab_size=40, n_positions=16,
        bos_token_id=0, eos_token_id=0, initializer_range=0.5,
    )
    return GPT2LMHeadModel(config).eval()


def token_batches(low: int, high: int, count: int = 3, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(low, high, (8, 6), generator=gen) for _ in range(count)]


def random_intervention(model: nn.Module, modules: str = BLOCKS, seed: int = 1) -> Intervention:
    gen = torch.Generator().manual_seed(seed)
    maps = {}
    for name in find_modules(model, modules):
        d = 16
        maps[name] = AffineMap(1 + 0.5 * torch.randn(d, generator=gen), torch.randn(d, generator=gen))
    return Intervention(maps, 1.0, "test")


def all_hooks_empty(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


class TupleBlock(nn.Module):
    """Returns (h, extra) like older transformer blocks."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, d)

    def forward(self, x):
        h = self.lin(x)
        return h, h.sum()


# ---------------------------------------------------------------- hooks


def test_find_modules_regex_list_and_errors():
    model = tiny_gpt2()
    assert find_modules(model, BLOCKS) == ["transformer.h.0", "transformer.h.1"]
    # A list comes back in model order.
    assert find_modules(model, ["transformer.h.1", "transformer.h.0"]) == [
        "transformer.h.0", "transformer.h.1",
    ]
    with pytest.raises(ValueError, match="modules.*matches no submodule"):
        find_modules(model, r"encoder\.layer\.\d+")
    with pytest.raises(ValueError, match="modules.*not a valid regular expression"):
        find_modules(model, r"transformer\.h\.(")
    with pytest.raises(ValueError, match="modules.*unknown"):
        find_modules(model, ["transformer.h.7"])


def test_pool_shapes():
    h3 = torch.randn(2, 5, 4)
    assert torch.equal(pool(h3), h3.mean(1))
    assert torch.equal(pool(h3, "none"), h3.reshape(10, 4))
    h4 = torch.randn(2, 3, 4, 5)
    assert torch.allclose(pool(h4), h4.mean((2, 3)))
    flat = pool(h4, "none")
    assert flat.shape == (40, 3) and torch.equal(flat[1], h4[0, :, 0, 1])
    with pytest.raises(ValueError, match="pool"):
        pool(h3, "max")


def test_hooks_removed_on_exit_and_on_error():
    model = tiny_gpt2()
    iv = random_intervention(model)
    ids = token_batches(0, 40, 1)[0]
    with steer(model, iv):
        assert model.transformer.h[0]._forward_hooks
        model(ids)
    assert all_hooks_empty(model)
    with pytest.raises(RuntimeError, match="boom"), steer(model, iv):
        model(ids)
        raise RuntimeError("boom")
    assert all_hooks_empty(model)
    # An error raised inside a hook (wrong channel count) also leaves no hook behind.
    bad = Intervention({"transformer.h.0": AffineMap(torch.ones(7), torch.zeros(7))})
    with pytest.raises(ValueError, match=r"transformer\.h\.0.*16 channels.*D = 7"), steer(model, bad):
        model(ids)
    assert all_hooks_empty(model)
    collect_activations(model, BLOCKS, [ids])
    assert all_hooks_empty(model)


def test_strength_zero_is_bit_identical_and_one_is_not():
    model = tiny_gpt2()
    ids = token_batches(0, 40, 1)[0]
    with torch.no_grad():
        plain = model(ids).logits
        iv = random_intervention(model)
        with steer(model, iv, strength=0.0):
            zero = model(ids).logits
        with steer(model, iv.with_strength(0.0)):
            zero2 = model(ids).logits
        with steer(model, iv):
            full = model(ids).logits
    assert torch.equal(zero, plain) and torch.equal(zero2, plain)
    assert not torch.allclose(full, plain, atol=1e-3)


def test_steer_matches_manual_map_on_tokens_tuples_and_images():
    gen = torch.Generator().manual_seed(0)
    omega, beta = 1 + torch.rand(4, generator=gen), torch.randn(4, generator=gen)
    m = AffineMap(omega, beta)
    # Tokens [B, T, D] in a block returning a tuple.
    model = nn.Sequential(TupleBlock(4))
    x = torch.randn(3, 5, 4, generator=gen)
    with torch.no_grad():
        h, extra = model(x)
        with steer(model, Intervention({"0": m}, 0.3)):
            h2, extra2 = model(x)
    assert torch.allclose(h2, 0.3 * (omega * h + beta) + 0.7 * h, atol=1e-6)
    assert torch.equal(extra2, extra)  # the rest of the tuple is kept
    # Images [B, C, H, W]: the map acts along dim 1.
    conv = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU())
    img = torch.randn(2, 2, 5, 5, generator=gen)
    with torch.no_grad():
        out = conv[0](img)
        with steer(conv, Intervention({"0": m})):
            steered = conv[0](img)
    ref = omega.view(1, 4, 1, 1) * out + beta.view(1, 4, 1, 1)
    assert torch.allclose(steered, ref, atol=1e-6)


def test_collect_activations_pooled_and_steered():
    model = tiny_gpt2()
    batches = token_batches(0, 40, 2)
    acts = collect_activations(model, BLOCKS, batches)
    assert set(acts) == {"transformer.h.0", "transformer.h.1"}
    assert acts["transformer.h.0"].shape == (16, 16)
    with torch.no_grad():
        ref = torch.cat([model.transformer.h[0](model.transformer.wte(b)
                                                + model.transformer.wpe(torch.arange(6)))
                         for b in batches])
    assert torch.allclose(acts["transformer.h.0"], ref.mean(1), atol=1e-5)
    tokens = collect_activations(model, ["transformer.h.0"], batches, pool="none")
    assert tokens["transformer.h.0"].shape == (96, 16)
    iv = random_intervention(model, r"transformer\.h\.0")
    steered = collect_activations(model, ["transformer.h.0"], batches, intervention=iv)
    with torch.no_grad():
        expected = pool(iv.maps["transformer.h.0"](ref))
    assert torch.allclose(steered["transformer.h.0"], expected, atol=1e-5)
    assert all_hooks_empty(model)


# ---------------------------------------------------------------- maps


def test_linear_act_gaussians_recovers_omega_beta():
    gen = torch.Generator().manual_seed(0)
    source = torch.randn(20000, 3, generator=gen, dtype=torch.float64)
    target = 3 + 2 * torch.randn(15000, 3, generator=gen, dtype=torch.float64)
    m = linear_act(source, target)
    assert torch.allclose(m.omega, torch.full((3,), 2.0, dtype=torch.float64), atol=0.05)
    assert torch.allclose(m.beta, torch.full((3,), 3.0, dtype=torch.float64), atol=0.05)
    assert torch.equal(m.low, source.min(0).values) and torch.equal(m.high, source.max(0).values)


def test_linear_act_matches_numpy_quantiles_and_polyfit():
    gen = torch.Generator().manual_seed(1)
    source = torch.randn(37, 2, generator=gen, dtype=torch.float64).exp()
    target = torch.randn(23, 2, generator=gen, dtype=torch.float64) ** 3
    m = linear_act(source, target)
    s = np.sort(source.numpy(), axis=0)
    levels = (np.arange(37) + 0.5) / 37
    for d in range(2):
        q = np.quantile(target[:, d].numpy(), levels, method="hazen")
        slope, intercept = np.polyfit(s[:, d], q, 1)
        assert math.isclose(m.omega[d].item(), slope, rel_tol=1e-9)
        assert math.isclose(m.beta[d].item(), intercept, rel_tol=1e-9, abs_tol=1e-12)


def test_linear_act_exact_affine_sends_sorted_source_to_sorted_target():
    gen = torch.Generator().manual_seed(2)
    source = torch.randn(50, 4, generator=gen, dtype=torch.float64)
    omega = torch.tensor([0.5, 2.0, 3.0, 1.5], dtype=torch.float64)
    beta = torch.tensor([1.0, -2.0, 0.0, 4.0], dtype=torch.float64)
    # The target is an independent permutation of the affine image: unpaired samples.
    target = (omega * source + beta)[torch.randperm(50, generator=gen)]
    m = linear_act(source, target)
    mapped = m.transport(source.sort(0).values)
    assert torch.allclose(mapped, target.sort(0).values, atol=1e-12, rtol=0)


def test_linear_act_support_and_strength():
    source = torch.tensor([[0.0], [1.0], [2.0]])
    target = torch.tensor([[10.0], [12.0], [14.0]])
    m = linear_act(source, target)
    z = torch.tensor([[-1.0], [0.5], [2.0], [3.0]])
    assert torch.allclose(m.transport(z), torch.tensor([[-1.0], [11.0], [14.0], [3.0]]))
    assert torch.allclose(m(z, 0.25), 0.25 * m.transport(z) + 0.75 * z)
    assert m(z, 0.0) is z


def test_gaussian_map_and_mean_shift_closed_forms():
    gen = torch.Generator().manual_seed(3)
    s = torch.randn(100, 3, generator=gen, dtype=torch.float64)
    t = 2 + 0.5 * torch.randn(80, 3, generator=gen, dtype=torch.float64)
    g = gaussian_map(s, t)
    z = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    ref = t.std(0, unbiased=False) / s.std(0, unbiased=False) * (z - s.mean(0)) + t.mean(0)
    assert torch.allclose(g(z), ref, atol=1e-12)
    assert torch.allclose(mean_shift(s, t)(z), z - s.mean(0) + t.mean(0), atol=1e-12)


@pytest.mark.parametrize("bad", [1.5, -0.1, float("nan")])
def test_bad_strength_raises(bad):
    m = AffineMap(torch.ones(2), torch.zeros(2))
    with pytest.raises(ValueError, match="strength"):
        m(torch.zeros(1, 2), bad)
    with pytest.raises(ValueError, match="strength"):
        Intervention({"a": m}, bad)
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="strength"), steer(net, Intervention({"0": m}), strength=bad):
        pass
    with pytest.raises(TypeError, match="strength"):
        m(torch.zeros(1, 2), True)


def test_estimator_input_errors():
    with pytest.raises(ValueError, match="source and target.*same number of neurons"):
        linear_act(torch.randn(5, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="source"):
        gaussian_map(torch.randn(5), torch.randn(5, 1))
    with pytest.raises(ValueError, match="target.*NaN"):
        mean_shift(torch.randn(5, 2), torch.full((5, 2), float("nan")))
    with pytest.raises(ValueError, match="channels"):
        AffineMap(torch.ones(3), torch.zeros(3))(torch.zeros(2, 4))


# ---------------------------------------------------------------- interventions


def test_save_load_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(4)
    iv = Intervention({
        "a": linear_act(torch.randn(10, 3, generator=gen), torch.randn(12, 3, generator=gen)),
        "b": gaussian_map(torch.randn(10, 2, generator=gen), torch.randn(9, 2, generator=gen)),
    }, 0.7, "linear_act")
    path = tmp_path / "iv.pt"
    iv.save(path)
    raw = torch.load(path, weights_only=True)
    assert isinstance(raw, dict) and raw["modules"] == ["a", "b"]
    back = Intervention.load(path)
    assert back.modules == iv.modules and back.strength == 0.7 and back.method == "linear_act"
    for name in iv.modules:
        for field in ("omega", "beta", "low", "high"):
            x, y = getattr(iv.maps[name], field), getattr(back.maps[name], field)
            assert (x is None and y is None) or torch.equal(x, y)


def test_compose_equals_applying_in_sequence():
    gen = torch.Generator().manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3))
    def rand_map():
        return AffineMap(1 + torch.rand(3, generator=gen), torch.randn(3, generator=gen))
    first = Intervention({"0": rand_map(), "2": rand_map()}, 0.6, "gaussian")
    second = Intervention({"0": rand_map()}, 0.3, "gaussian")
    x = torch.randn(5, 3, generator=gen)
    with torch.no_grad():
        with steer(model, first), steer(model, second):  # hooks run in install order
            nested = model(x)
        with steer(model, compose(first, second)):
            composed = model(x)
        h = model[0](x)
        h = second.maps["0"](first.maps["0"](h, 0.6), 0.3)
        manual = first.maps["2"](model[2](model[1](h)), 0.6)
    assert torch.allclose(composed, nested, atol=1e-6)
    assert torch.allclose(composed, manual, atol=1e-6)
    supported = Intervention({"0": linear_act(torch.randn(9, 3), torch.randn(9, 3))})
    with pytest.raises(ValueError, match="piecewise"):
        compose(supported, second)


# ---------------------------------------------------------------- AcT


def test_fit_act_is_sequential():
    model = tiny_gpt2()
    source, target = token_batches(0, 20, 3, seed=1), token_batches(20, 40, 3, seed=2)
    iv = fit_act(model, BLOCKS, source, target)  # default: every token is a sample
    assert iv.modules == ["transformer.h.0", "transformer.h.1"] and iv.method == "linear_act"
    src = collect_activations(model, BLOCKS, source, pool="none")
    tgt = collect_activations(model, BLOCKS, target, pool="none")
    # The first layer sees the unsteered model; the second sees the first map active.
    first = linear_act(src["transformer.h.0"], tgt["transformer.h.0"])
    independent = linear_act(src["transformer.h.1"], tgt["transformer.h.1"])
    assert torch.allclose(iv.maps["transformer.h.0"].omega, first.omega, atol=1e-6)
    assert not torch.allclose(iv.maps["transformer.h.1"].omega, independent.omega, atol=1e-3)
    steered = collect_activations(
        model, ["transformer.h.1"], source, pool="none",
        intervention=Intervention({"transformer.h.0": iv.maps["transformer.h.0"]}),
    )["transformer.h.1"]
    sequential = linear_act(steered, tgt["transformer.h.1"])
    assert torch.allclose(iv.maps["transformer.h.1"].omega, sequential.omega, atol=1e-5)
    # Steering with the fitted maps moves the source tokens towards the target's.
    moved = collect_activations(model, BLOCKS, source, pool="none", intervention=iv)
    name = "transformer.h.1"
    before = wasserstein_1d(src[name], tgt[name]).mean()
    after = wasserstein_1d(moved[name], tgt[name]).mean()
    assert after < 0.5 * before
    # pool="mean" fits on the sentence means instead.
    means = fit_act(model, BLOCKS, source, target, pool="mean")
    mean_src = collect_activations(model, ["transformer.h.0"], source)["transformer.h.0"]
    mean_tgt = collect_activations(model, ["transformer.h.0"], target)["transformer.h.0"]
    assert torch.allclose(means.maps["transformer.h.0"].omega,
                          linear_act(mean_src, mean_tgt).omega, atol=1e-6)
    assert all_hooks_empty(model)


# ---------------------------------------------------------------- LinEAS


def test_wasserstein_1d_matches_pot_exact():
    gen = torch.Generator().manual_seed(6)
    a = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    b = 1 + 2 * torch.randn(5, 3, generator=gen, dtype=torch.float64)
    w = wasserstein_1d(a, b)
    for d in range(3):
        cost = (a[:, d, None] - b[None, :, d]) ** 2
        ref = ot.emd2(np.full(7, 1 / 7), np.full(5, 1 / 5), cost.numpy())
        assert math.isclose(w[d].item(), ref, rel_tol=1e-10)
    same = wasserstein_1d(a, a[torch.randperm(7, generator=gen)])
    assert torch.allclose(same, torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("l1, group", [(0.3, 0.0), (0.0, 0.5), (0.2, 0.4), (0.1, 10.0)])
def test_sparse_group_prox_matches_brute_force(l1, group):
    v = np.array([1.2, -0.25, 0.6, -0.9, 0.05])

    def objective(theta):
        return 0.5 * np.sum((theta - v) ** 2) + l1 * np.abs(theta).sum() + group * np.linalg.norm(theta)

    best = scipy.optimize.minimize(objective, v, method="Powell",
                                   options={"xtol": 1e-10, "ftol": 1e-14, "maxiter": 20000})
    prox = sparse_group_prox(torch.tensor(v), l1, group).numpy()
    assert objective(prox) <= best.fun + 1e-9
    assert np.allclose(prox, best.x, atol=1e-4)


@pytest.mark.parametrize("l1, group", [(0.3, 0.0), (0.0, 0.5), (0.2, 0.4), (0.1, 10.0), (0.05, 0.3)])
def test_sparse_group_prox_in_a_diagonal_metric_matches_brute_force(l1, group):
    v = np.array([1.2, -0.25, 0.6, -0.9, 0.05, 0.4])
    h = np.array([0.5, 3.0, 1.0, 0.2, 8.0, 2.0])  # e.g. Adam's (sqrt(v) + eps) / lr

    def objective(theta):
        return (0.5 * np.sum(h * (theta - v) ** 2) + l1 * np.abs(theta).sum()
                + group * np.linalg.norm(theta))

    best = scipy.optimize.minimize(objective, v, method="Powell",
                                   options={"xtol": 1e-10, "ftol": 1e-14, "maxiter": 20000})
    prox = sparse_group_prox(torch.tensor(v), l1, group, torch.tensor(h)).numpy()
    assert objective(prox) <= best.fun + 1e-9
    assert np.allclose(prox, best.x, atol=1e-4)
    # A constant metric 1/s is the Euclidean prox at (l1·s, group·s).
    s = 0.7
    flat = sparse_group_prox(torch.tensor(v), l1, group, torch.full((6,), 1 / s, dtype=torch.float64))
    assert torch.allclose(flat, sparse_group_prox(torch.tensor(v), l1 * s, group * s), atol=1e-12)


def test_proximal_adam_thresholds_each_coordinate_at_its_own_step():
    # One step from θ = 0: Adam moves every coordinate by lr·m̂/(√v̂ + ε) = lr·sign(g) (its
    # normalized step), and proximal Adam thresholds coordinate i at l1·lr/(|g_i| + ε), so
    # θ_i = −lr·sign(g_i)·max(|g_i| − l1, 0)/(|g_i| + ε): kept exactly where |g_i| > l1, the
    # lasso's optimality test. (A Euclidean threshold l1·lr would keep all for l1 < 1.)
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(64, 8, generator=gen, dtype=torch.float64) * torch.linspace(0.2, 2, 8)
    y = torch.randn(64, 8, generator=gen, dtype=torch.float64) + torch.linspace(-1, 1, 8)
    xs, ys = x.sort(0).values.float(), y.sort(0).values.float()
    # ∂/∂(ω − 1) and ∂/∂β of (1/D) Σ_d mean_i (ω x_(i) + β − y_(i))² at the identity.
    g = torch.stack([2 * ((xs - ys) * xs).mean(0), 2 * (xs - ys).mean(0)]) / 8
    l1, lr = float(g.abs().median()), 0.05
    model = nn.Sequential(nn.Identity())
    fit = fit_lineas(model, ["0"], [x.float()], [y.float()], steps=1, lr=lr, l1=l1)
    m = fit.intervention.maps["0"]
    theta = torch.stack([m.omega - 1, m.beta])
    expected = -lr * g.sign() * (g.abs() - l1).clamp(min=0) / (g.abs() + 1e-8)
    assert torch.allclose(theta, expected, atol=1e-6, rtol=1e-4)
    assert torch.equal(fit.support["0"], (g.abs() > l1).any(0))
    assert 0 < fit.fraction_kept < 1


def test_sparse_lineas_support_shrinks_smoothly_with_the_default_optimizer():
    # The default optimizer with a penalty is proximal Adam: the support shrinks gradually
    # along the grid. Adam followed by the Euclidean prox kept ~all neurons up to l1 ≈ 0.5 and
    # dropped 78% of them between l1 = 0.5 and 1.
    model = tiny_gpt2()
    source, target = token_batches(0, 20, 2, seed=1), token_batches(20, 40, 2, seed=2)
    grid = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    kept = [fit_lineas(model, BLOCKS, source, target, steps=25, lr=0.05, l1=l1).fraction_kept
            for l1 in grid]
    assert kept[0] > 0.9 and kept[-1] == 0.0, kept
    assert all(b <= a + 0.05 for a, b in itertools.pairwise(kept)), kept
    assert max(a - b for a, b in itertools.pairwise(kept)) < 0.4, kept


def test_kept_groups_non_increasing_with_penalty():
    gen = torch.Generator().manual_seed(7)
    groups = [torch.randn(2, 6, generator=gen) * s for s in (0.1, 0.5, 1.0, 2.0, 4.0)]
    kept = []
    for penalty in np.linspace(0, 40, 41):
        kept.append(sum(bool(sparse_group_prox(g, 0.1, penalty).any()) for g in groups))
    assert kept[0] == 5 and kept[-1] == 0
    assert all(x >= y for x, y in itertools.pairwise(kept))
    # The same on a fixed LinEAS problem: more group penalty, no more layers kept.
    model = nn.Sequential(nn.Identity(), nn.Linear(4, 4), nn.Identity())
    x = [torch.randn(32, 4, generator=gen) for _ in range(2)]
    y = [2 * torch.randn(32, 4, generator=gen) + 1 for _ in range(2)]
    layers = [
        len(fit_lineas(model, ["0", "2"], x, y, steps=30, lr=0.05, group=g).layers_kept)
        for g in (0.0, 1.0, 100.0)
    ]
    assert layers[0] == 2 and layers[-1] == 0
    assert all(a >= b for a, b in itertools.pairwise(layers))


def test_lineas_recovers_known_affine_relation():
    gen = torch.Generator().manual_seed(8)
    omega = torch.tensor([0.5, 1.0, 2.0, 1.5])
    beta = torch.tensor([1.0, -1.0, 0.0, 2.0])
    source = [torch.randn(128, 4, generator=gen) for _ in range(2)]
    # Unpaired: the target is a shuffled affine image of the source Gaussian samples, so the
    # exact optimum of the W2 loss over affine maps is (omega, beta) itself.
    image = omega * torch.cat(source) + beta
    target = list(image[torch.randperm(256, generator=gen)].split(128))
    model = nn.Sequential(nn.Identity(), nn.Linear(4, 2))
    result = fit_lineas(model, ["0"], source, target, steps=300, lr=0.05)
    m = result.intervention.maps["0"]
    assert torch.allclose(m.omega, omega, atol=0.05)
    assert torch.allclose(m.beta, beta, atol=0.05)
    # For one layer the W2 optimum is the least-squares fit on sorted pairs: Linear-AcT's map.
    reference = linear_act(torch.cat(source), torch.cat(target))
    assert torch.allclose(m.omega, reference.omega, atol=0.05)
    assert result.losses[-1] < 0.05 * result.losses[0]
    assert result.fraction_kept == 1.0 and result.layers_kept == ("0",)


def test_lineas_lowers_loss_on_gpt2_and_l1_sparsifies():
    model = tiny_gpt2()
    source, target = token_batches(0, 20, 2, seed=1), token_batches(20, 40, 2, seed=2)
    params = {name: p.clone() for name, p in model.named_parameters()}
    result = fit_lineas(model, BLOCKS, source, target, steps=25, lr=0.05)
    assert result.losses.shape == (25,) and result.losses.dtype == torch.float64
    assert result.losses[-5:].mean() < 0.6 * result.losses[0]
    assert all(torch.equal(p, params[n]) and p.requires_grad for n, p in model.named_parameters())
    assert all_hooks_empty(model)
    # The learned intervention, applied with steer, reproduces the training loss.
    moved = collect_activations(model, BLOCKS, source, intervention=result.intervention)
    tgt = collect_activations(model, BLOCKS, target)
    loss = sum(wasserstein_1d(moved[n], tgt[n]).mean() for n in moved)
    assert loss < result.losses[0]
    sparse = fit_lineas(model, BLOCKS, source, target, steps=25, lr=0.05, l1=1.0, batch_size=1)
    assert sparse.fraction_kept < result.fraction_kept
    for name, keep in sparse.support.items():
        m = sparse.intervention.maps[name]
        assert torch.all(m.omega[~keep] == 1) and torch.all(m.beta[~keep] == 0)


def test_fits_leave_padding_out():
    # A padded tokenizer output (dict with "attention_mask") gives the fits of the same texts
    # unpadded: pad tokens are neither averaged in nor samples.
    model = tiny_gpt2()
    gen = torch.Generator().manual_seed(3)

    def texts(low, high, lengths):
        return [torch.randint(low, high, (n,), generator=gen) for n in lengths]

    def padded(group):
        length = max(t.numel() for t in group)
        ids = torch.zeros(len(group), length, dtype=torch.long)
        mask = torch.zeros(len(group), length, dtype=torch.long)
        for i, t in enumerate(group):
            ids[i, : t.numel()], mask[i, : t.numel()] = t, 1
        return {"input_ids": ids, "attention_mask": mask}

    src, tgt = texts(1, 20, (6, 2, 4, 5, 3, 6)), texts(20, 40, (3, 6, 5, 2, 4, 6))
    src_pad, tgt_pad = [padded(src[:3]), padded(src[3:])], [padded(tgt[:3]), padded(tgt[3:])]
    src_alone, tgt_alone = [t[None] for t in src], [t[None] for t in tgt]
    for pool_how in ("none", "mean"):
        a = fit_act(model, BLOCKS, src_pad, tgt_pad, pool=pool_how)
        b = fit_act(model, BLOCKS, src_alone, tgt_alone, pool=pool_how)
        for name in a.maps:
            for field in ("omega", "beta", "low", "high"):
                assert torch.allclose(getattr(a.maps[name], field), getattr(b.maps[name], field),
                                      atol=1e-4), (pool_how, name, field)
    la = fit_lineas(model, BLOCKS, src_pad, tgt_pad, pool="none", steps=5, lr=0.05)
    lb = fit_lineas(model, BLOCKS, src_alone, tgt_alone, pool="none", steps=5, lr=0.05)
    assert torch.allclose(la.losses, lb.losses, rtol=1e-4)
    # An explicit mask function serves both sides; a list of masks is refused (ambiguous).
    pairs = [(d["input_ids"], d["attention_mask"]) for d in src_pad]
    tpairs = [(d["input_ids"], d["attention_mask"]) for d in tgt_pad]
    forward = lambda model, b: model(input_ids=b[0], attention_mask=b[1])
    c = fit_act(model, BLOCKS, pairs, tpairs, forward=forward, mask=lambda b: b[1])
    default = fit_act(model, BLOCKS, src_pad, tgt_pad)
    assert torch.allclose(c.maps["transformer.h.1"].omega, default.maps["transformer.h.1"].omega)
    with pytest.raises(TypeError, match="mask"):
        fit_act(model, BLOCKS, pairs, tpairs, forward=forward, mask=[p[1] for p in pairs])


def test_support_coverage_counts_activations_inside_the_maps_supports():
    model = tiny_gpt2()
    source, target = token_batches(0, 20, 3, seed=1), token_batches(20, 40, 3, seed=2)
    tokens = fit_act(model, BLOCKS, source, target)
    cover = support_coverage(model, tokens, source)
    assert set(cover) == {"transformer.h.0", "transformer.h.1"}
    assert all(v == 1.0 for v in cover.values())  # the fitting tokens lie in their own range
    # By hand for the first layer (no map upstream of it) on other text.
    other = token_batches(0, 40, 2, seed=5)
    raw = collect_activations(model, ["transformer.h.0"], other, pool="none")["transformer.h.0"]
    m = tokens.maps["transformer.h.0"]
    hand = ((raw >= m.low) & (raw <= m.high)).double().mean().item()
    assert support_coverage(model, tokens, other)["transformer.h.0"] == pytest.approx(hand)
    # Maps fitted on sentence means cover fewer of the token activations they act on.
    means = fit_act(model, BLOCKS, source, target, pool="mean")
    assert max(support_coverage(model, means, source).values()) < 0.9
    shift = fit_act(model, BLOCKS, source, target, method="mean_shift")
    assert support_coverage(model, shift, other) == {n: 1.0 for n in cover}
    assert all_hooks_empty(model)


def test_lineas_argument_errors():
    model = nn.Sequential(nn.Identity())
    x = [torch.randn(4, 2)]
    with pytest.raises(ValueError, match="l1"):
        fit_lineas(model, ["0"], x, x, l1=-1.0)
    with pytest.raises(ValueError, match="lr"):
        fit_lineas(model, ["0"], x, x, lr=0.0)
    with pytest.raises(ValueError, match="modules"):
        fit_lineas(model, ["1"], x, x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_steer_on_cuda_with_cpu_maps():
    model = tiny_gpt2().cuda()
    iv = random_intervention(model)
    ids = token_batches(0, 40, 1)[0].cuda()
    with torch.no_grad():
        plain = model(ids).logits
        with steer(model, iv, strength=0.0):
            assert torch.equal(model(ids).logits, plain)
        with steer(model, iv):
            out = model(ids).logits
    assert out.device.type == "cuda" and not torch.allclose(out, plain)
    source, target = token_batches(0, 20, 2, seed=1), token_batches(20, 40, 2, seed=2)
    source, target = [b.cuda() for b in source], [b.cuda() for b in target]
    act = fit_act(model, BLOCKS, source, target)
    assert act.maps["transformer.h.0"].omega.device.type == "cuda"
    res = fit_lineas(model, BLOCKS, source, target, steps=10, lr=0.05)
    assert res.intervention.maps["transformer.h.1"].beta.device.type == "cuda"
    assert res.losses[-1] < res.losses[0]
