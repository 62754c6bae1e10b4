"""otkit.flows.metrics, otkit.flows.digits and otkit.data.digits.

References no one here wrote: closed forms (translates, point masses, Gaussians, a quarter
circle), scipy (linear_sum_assignment, stats.energy_distance, linalg.sqrtm), POT through
otkit.exact, and otkit.gaussian's Gaussian W2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.stats
import torch

from otkit.data import DIGITS_SPLITS, digits
from otkit.exact import emd
from otkit.flows import metrics
from otkit.flows.digits import (
    DigitsClassifier,
    DigitsScorer,
    frechet_distance,
    train_digits_classifier,
)
from otkit.flows.metrics import (
    energy_distance,
    mmd,
    path_length_ratio,
    path_straightness,
    wasserstein2,
)
from otkit.gaussian import random_spd, w2_squared


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# wasserstein2
# --------------------------------------------------------------------------------------


def test_w2_of_a_translate_is_the_shift_length():
    x = torch.randn(200, 3, generator=_gen(), dtype=torch.float64)
    v = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64)
    assert wasserstein2(x, x + v) == pytest.approx(3.0, abs=1e-9)
    assert wasserstein2(x, x) == pytest.approx(0.0, abs=1e-9)


def test_w2_between_point_masses_and_a_cloud():
    p = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    q = torch.tensor([[4.0, 2.0]], dtype=torch.float64)
    assert wasserstein2(p, q) == pytest.approx(5.0, abs=1e-12)
    # A point mass against a cloud: every point moves to the mass, W2² = mean ‖y_j − p‖².
    y = torch.randn(30, 2, generator=_gen(1), dtype=torch.float64)
    expected = (y - p).square().sum(1).mean().sqrt().item()
    assert wasserstein2(p, y) == pytest.approx(expected, rel=1e-10)


def test_w2_matches_linear_sum_assignment():
    gen = _gen(2)
    x = torch.randn(40, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 4, generator=gen, dtype=torch.float64) + 0.5
    cost = torch.cdist(x, y).square().numpy()
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    expected = math.sqrt(cost[rows, cols].mean())
    assert wasserstein2(x, y) == pytest.approx(expected, rel=1e-10)
    # float32 input gives the same value (float64 inside) up to the inputs' rounding.
    assert wasserstein2(x.float(), y.float()) == pytest.approx(expected, rel=1e-6)


def test_w2_with_weights_is_twice_otkits_half_cost():
    gen = _gen(3)
    x = torch.randn(25, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(35, 2, generator=gen, dtype=torch.float64)
    a = 0.1 + torch.rand(25, generator=gen, dtype=torch.float64)
    b = 0.1 + torch.rand(35, generator=gen, dtype=torch.float64)
    half_cost = emd(x, y, a, b).ot_cost().item()  # otkit's ½‖x − y‖² convention
    assert wasserstein2(x, y, a, b) ** 2 == pytest.approx(2.0 * half_cost, rel=1e-10)
    # Weights are normalized: scaling them changes nothing.
    assert wasserstein2(x, y, 3.0 * a, b) == pytest.approx(wasserstein2(x, y, a, b), rel=1e-12)


def test_w2_refuses_too_large_problems(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_EMD_ENTRIES", 99)
    x = torch.zeros(10, 2)
    with pytest.raises(ValueError, match="subsample"):
        wasserstein2(x, x)


# --------------------------------------------------------------------------------------
# energy distance
# --------------------------------------------------------------------------------------


def test_energy_distance_is_zero_for_identical_samples():
    x = torch.randn(100, 5, generator=_gen())
    assert energy_distance(x, x) == 0.0
    # Equal as multisets: order does not matter (round-off only).
    assert energy_distance(x, x.flip(0)) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_is_the_square_of_scipys_in_1d():
    # scipy.stats.energy_distance returns sqrt(2E|X−Y| − E|X−X'| − E|Y−Y'|) (it computes
    # √2 ‖F_u − F_v‖_L2 of the empirical CDFs); otkit returns the statistic itself.
    gen = _gen(4)
    u = torch.randn(50, 1, generator=gen, dtype=torch.float64)
    v = 0.3 + 1.5 * torch.randn(70, 1, generator=gen, dtype=torch.float64)
    reference = scipy.stats.energy_distance(u[:, 0].numpy(), v[:, 0].numpy())
    assert energy_distance(u, v) == pytest.approx(reference**2, rel=1e-10)


def test_energy_distance_bands_match_the_direct_formula(monkeypatch):
    gen = _gen(5)
    x = torch.randn(23, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(31, 3, generator=gen, dtype=torch.float64) + 1.0
    direct = (
        2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean()
    ).item()
    monkeypatch.setattr(metrics, "_BAND", 4)  # several bands, the last one partial
    assert energy_distance(x, y) == pytest.approx(direct, rel=1e-10)


def test_energy_distance_grows_with_a_shift():
    gen = _gen(6)
    x, y = torch.randn(300, 2, generator=gen), torch.randn(300, 2, generator=gen)
    same, shifted = energy_distance(x, y), energy_distance(x, y + 0.5)
    assert 0.0 <= same < 0.05 and shifted > 5 * same


# --------------------------------------------------------------------------------------
# MMD
# --------------------------------------------------------------------------------------


def test_mmd_is_near_zero_for_one_law_and_larger_for_a_shift():
    gen = _gen(7)
    x, y = torch.randn(300, 2, generator=gen), torch.randn(300, 2, generator=gen)
    same, shifted = mmd(x, y), mmd(x, y + 0.5)
    assert abs(same) < 0.02
    assert shifted > 0.08 and shifted > 10 * abs(same)


def test_mmd_matches_the_direct_unbiased_formula(monkeypatch):
    gen = _gen(8)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(17, 3, generator=gen, dtype=torch.float64) + 0.7
    sigmas = (0.5, 2.0)

    def gram(u, v):
        sq = torch.cdist(u, v).square()
        return sum(torch.exp(-sq / (2 * s**2)) for s in sigmas)

    def off_diagonal_mean(k):
        return (k.sum() - k.diagonal().sum()) / (k.shape[0] * (k.shape[0] - 1))

    direct = (
        off_diagonal_mean(gram(x, x)) + off_diagonal_mean(gram(y, y)) - 2 * gram(x, y).mean()
    ).item()
    monkeypatch.setattr(metrics, "_BAND", 5)
    assert mmd(x, y, sigmas, relative=False) == pytest.approx(direct, rel=1e-10)
    # Relative bandwidths are multiples of the median pairwise distance of [x; y].
    z = torch.cat([x, y])
    i, j = torch.triu_indices(len(z), len(z), offset=1)
    median = torch.cdist(z, z)[i, j].median().item()
    assert mmd(x, y, (1.0,)) == pytest.approx(mmd(x, y, (median,), relative=False), rel=1e-10)


# --------------------------------------------------------------------------------------
# path straightness
# --------------------------------------------------------------------------------------


def _grid(steps: int) -> torch.Tensor:
    return torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)


def test_straight_constant_speed_paths():
    gen = _gen(9)
    x0 = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    x1 = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    t = _grid(16)[:, None, None]
    path = (1 - t) * x0 + t * x1  # [17, 20, 3]
    assert path_straightness(path) == pytest.approx(0.0, abs=1e-20)
    assert path_length_ratio(path) == pytest.approx(1.0, abs=1e-12)
    assert path_straightness(path.float()) < 1e-10


def test_straight_path_at_varying_speed():
    # A straight line run at speed 2t: not straight in Liu et al.'s sense (S > 0), length ratio 1.
    x0, x1 = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    t = _grid(1000)[:, None, None]
    path = (1 - t**2) * x0 + t**2 * x1
    # ‖x1 − x0‖² ∫ (1 − 2t)² dt = 2 / 3.
    assert path_straightness(path) == pytest.approx(2 / 3, rel=1e-5)
    assert path_length_ratio(path) == pytest.approx(1.0, abs=1e-12)


def test_quarter_circle():
    # x(t) = (cos πt/2, sin πt/2): speed π/2, chord √2, so S = π²/4 − 2 and R = π/(2√2).
    t = _grid(1000)
    path = torch.stack([torch.cos(math.pi * t / 2), torch.sin(math.pi * t / 2)], dim=1)
    path = path[:, None, :].expand(-1, 3, -1)  # three identical trajectories
    assert path_straightness(path) == pytest.approx(math.pi**2 / 4 - 2, rel=1e-5)
    assert path_length_ratio(path) == pytest.approx(math.pi / (2 * math.sqrt(2)), rel=1e-5)


def test_path_validation():
    good = torch.zeros(3, 2, 2)
    with pytest.raises(TypeError, match="path"):
        path_straightness(good.numpy())
    with pytest.raises(TypeError, match="dtype"):
        path_straightness(good.long())
    with pytest.raises(ValueError, match=r"\[T\+1, k, d\]"):
        path_straightness(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="at least 2 time points"):
        path_straightness(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="empty"):
        path_straightness(torch.zeros(3, 0, 2))
    bad = torch.rand(3, 2, 2)
    bad[1, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        path_length_ratio(bad)
    with pytest.raises(ValueError, match="end where they start"):
        path_length_ratio(good)


# --------------------------------------------------------------------------------------
# validation shared by the sample metrics
# --------------------------------------------------------------------------------------


SAMPLE_METRICS = [wasserstein2, energy_distance, mmd]


@pytest.mark.parametrize("metric", SAMPLE_METRICS, ids=lambda f: f.__name__)
def test_sample_metric_validation(metric):
    x = torch.randn(5, 2, generator=_gen())
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        metric(x.numpy(), x)
    with pytest.raises(TypeError, match="y has dtype"):
        metric(x, x.long())
    with pytest.raises(ValueError, match="same dimension"):
        metric(x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="x is empty"):
        metric(torch.zeros(0, 2), x)
    with pytest.raises(ValueError, match=r"shape \[n, d\]"):
        metric(x, x[:, 0])
    bad = x.clone()
    bad[2, 1] = math.inf
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        metric(x, bad)


def test_metric_specific_validation():
    x = torch.randn(5, 2, generator=_gen())
    with pytest.raises(ValueError, match="a has negative"):
        wasserstein2(x, x, a=torch.tensor([1.0, -1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"b must have shape \[5\]"):
        wasserstein2(x, x, b=torch.ones(4))
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd(x[:1], x)
    with pytest.raises(ValueError, match="bandwidths"):
        mmd(x, x, (1.0, -0.5))
    with pytest.raises(ValueError, match="relative=False"):
        mmd(torch.zeros(4, 2), torch.zeros(4, 2))


# --------------------------------------------------------------------------------------
# the digits data set
# --------------------------------------------------------------------------------------


def test_digits_shapes_and_range():
    x, labels = digits(return_labels=True)
    assert x.shape == (1797, 64) and x.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert x.min() == -1.0 and x.max() == 1.0
    # Pixels 0..16 map to the grid −1, −7/8, ..., 1.
    assert torch.equal((x.double() + 1) * 8, ((x.double() + 1) * 8).round())
    assert x.view(-1, 1, 8, 8).shape == (1797, 1, 8, 8)
    assert digits(dtype=torch.float64).dtype == torch.float64


def test_digits_split_is_stratified_disjoint_and_reproducible():
    full = digits(dtype=torch.float64)
    train = digits(split="train", dtype=torch.float64)
    test, y_test = digits(split="test", return_labels=True, dtype=torch.float64)
    assert train.shape[0] + test.shape[0] == 1797
    assert abs(test.shape[0] - 0.2 * 1797) <= 5
    # The parts partition the data: their rows, together, are the whole set's rows.
    def rows(z):
        return sorted(map(tuple, z.tolist()))

    assert rows(torch.cat([train, test])) == rows(full)
    counts_test = y_test.bincount(minlength=10)
    counts_all = digits(return_labels=True)[1].bincount()
    assert (counts_test - 0.2 * counts_all).abs().max() <= 0.5 + 1e-9
    assert torch.equal(test, digits(split="test", dtype=torch.float64))
    assert not torch.equal(test, digits(split="test", seed=1, dtype=torch.float64))
    assert digits(split="test", test_fraction=0.5).shape[0] > 800


def test_digits_arguments():
    with pytest.raises(ValueError, match=str(DIGITS_SPLITS[0])):
        digits(split="validation")
    with pytest.raises(ValueError, match="test_fraction"):
        digits(split="train", test_fraction=1.0)
    with pytest.raises(TypeError, match="test_fraction"):
        digits(test_fraction="0.2")
    with pytest.raises(TypeError, match="seed"):
        digits(seed=1.5)
    with pytest.raises(TypeError, match="floating-point"):
        digits(dtype=torch.int64)


# --------------------------------------------------------------------------------------
# the Fréchet distance
# --------------------------------------------------------------------------------------


def test_frechet_matches_the_gaussian_w2_closed_form():
    gen = _gen(10)
    d = 6
    mu1 = torch.randn(d, generator=gen, dtype=torch.float64)
    mu2 = torch.randn(d, generator=gen, dtype=torch.float64)
    cov1 = random_spd(d, gen, condition=30.0, dtype=torch.float64)
    cov2 = random_spd(d, gen, condition=5.0, dtype=torch.float64)
    expected = w2_squared(mu1, cov1, mu2, cov2).item()
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-10)
    # FID's textbook form with scipy's sqrtm of the non-symmetric product Σ1Σ2.
    root = scipy.linalg.sqrtm(cov1.numpy() @ cov2.numpy()).real
    fid = ((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace()).item() - 2 * np.trace(root)
    assert frechet_distance(mu1.numpy(), cov1.numpy(), mu2.numpy(), cov2.numpy()) == (
        pytest.approx(fid, rel=1e-8)
    )
    assert frechet_distance(mu1, cov1, mu1, cov1) == pytest.approx(0.0, abs=1e-10)


def test_frechet_of_diagonal_and_singular_covariances():
    mu1, mu2 = torch.zeros(3), torch.tensor([1.0, 0.0, 2.0])
    a, b = torch.tensor([4.0, 1.0, 0.0]), torch.tensor([1.0, 9.0, 0.0])  # rank-deficient
    expected = 5.0 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()  # 5 + 1 + 4
    assert frechet_distance(mu1, a.diag(), mu2, b.diag()) == pytest.approx(expected, rel=1e-12)


def test_frechet_validation():
    mu, cov = torch.zeros(3), torch.eye(3)
    with pytest.raises(ValueError, match=r"mu1 must have shape \[d\]"):
        frechet_distance(torch.zeros(3, 1), cov, mu, cov)
    with pytest.raises(TypeError, match="mu1"):
        frechet_distance([0.0, 0.0, 0.0], cov, mu, cov)
    with pytest.raises(ValueError, match=r"cov2 must have shape \[3, 3\]"):
        frechet_distance(mu, cov, mu, torch.eye(4))
    with pytest.raises(ValueError, match="mu2 must have shape"):
        frechet_distance(mu, cov, torch.zeros(4), cov)
    with pytest.raises(ValueError, match="cov1 contains NaN"):
        frechet_distance(mu, torch.full((3, 3), math.nan), mu, cov)
    with pytest.raises(TypeError, match="cov1"):
        frechet_distance(mu, [[1.0]], mu, cov)


# --------------------------------------------------------------------------------------
# the digits classifier and scorer (trained once for the module: a few seconds)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scorer() -> DigitsScorer:
    state = torch.get_rng_state()
    trained = train_digits_classifier(seed=0)
    assert torch.equal(torch.get_rng_state(), state), "training must not touch the global RNG"
    return trained


def test_classifier_shapes():
    net = DigitsClassifier()
    x = torch.rand(7, 64) * 2 - 1
    assert net.features(x).shape == (7, 64)
    assert net(x).shape == (7, 10)
    torch.testing.assert_close(net(x.view(-1, 1, 8, 8)), net(x))
    with pytest.raises(ValueError, match=r"\[k, 64\]"):
        net(torch.zeros(7, 63))


def test_classifier_accuracy(scorer):
    assert scorer.accuracy > 0.95
    assert not scorer.classifier.training
    assert scorer.mean.shape == (64,) and scorer.cov.shape == (64, 64)
    assert scorer.reference == "train" and scorer.n_reference + scorer.n_test == 1797


def test_real_digits_score_far_better_than_noise_and_corruptions(scorer):
    test = digits(split="test")
    real = scorer.score(test)
    assert real.frechet == pytest.approx(scorer.real_frechet, rel=1e-9)
    assert real.confidence > 0.9 and real.class_balance > 0.99
    noise = scorer.score(torch.rand(test.shape, generator=_gen(11)) * 2 - 1)
    shuffled = scorer.score(test[:, torch.randperm(64, generator=_gen(12))])  # pixels permuted
    blurred = torch.nn.functional.avg_pool2d(
        test.view(-1, 1, 8, 8), 3, stride=1, padding=1, count_include_pad=False
    )
    blurred = scorer.score(blurred)
    assert noise.frechet > 20 * real.frechet
    assert shuffled.frechet > 10 * real.frechet
    assert blurred.frechet > 10 * real.frechet
    # The reference sample against itself: identical statistics.
    assert scorer.score(digits(split="train")).frechet == pytest.approx(0.0, abs=1e-6)


def test_score_fields(scorer):
    test, labels = digits(split="test", return_labels=True)
    scores = scorer.score(test.view(-1, 1, 8, 8))
    assert scores.n == test.shape[0]
    assert scores.class_frequencies.shape == (10,)
    assert scores.class_frequencies.sum().item() == pytest.approx(1.0)
    assert (scores.predictions == labels).double().mean().item() == pytest.approx(scorer.accuracy)
    # One digit repeated: a single predicted class, balance 0 (mode collapse).
    collapsed = scorer.score(test[:1].expand(50, -1))
    assert collapsed.class_balance == pytest.approx(0.0, abs=1e-12)
    assert collapsed.class_frequencies.max().item() == 1.0


def test_score_validation(scorer):
    with pytest.raises(TypeError, match="samples must be a torch.Tensor"):
        scorer.score(np.zeros((5, 64)))
    with pytest.raises(TypeError, match="samples has dtype"):
        scorer.score(torch.zeros(5, 64, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[k, 64\]"):
        scorer.score(torch.zeros(5, 8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        scorer.score(torch.zeros(1, 64))
    bad = torch.zeros(5, 64)
    bad[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        scorer.score(bad)
    with pytest.raises(ValueError, match="reference"):
        train_digits_classifier(reference="test")
    with pytest.raises(ValueError, match="epochs"):
        train_digits_classifier(epochs=0)
