"""otkit.data: shapes, dtypes, reproducibility, rough statistics, argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from otkit.data import (
    TWO_CLOUD_KINDS,
    checkerboard,
    eight_gaussians,
    gaussian_mixture,
    moons,
    two_clouds,
)
from otkit.data import samplers as datasets

SAMPLERS = [gaussian_mixture, eight_gaussians, moons, checkerboard]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("n", [1, 7, 200])
def test_shape_and_default_dtype(sampler, n):
    x = sampler(n, seed=0)
    assert x.shape == (n, 2)
    assert x.dtype == torch.float32
    assert x.device.type == "cpu"
    assert torch.isfinite(x).all()


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_seed_and_generator_are_reproducible(sampler):
    a = sampler(50, seed=3)
    b = sampler(50, seed=3)
    c = sampler(50, generator=torch.Generator().manual_seed(3))
    d = sampler(50, generator=3)
    assert torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, d)
    assert not torch.equal(a, sampler(50, seed=4))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_dtype_and_same_draw_across_dtypes(sampler):
    x32 = sampler(40, seed=1)
    x64 = sampler(40, seed=1, dtype=torch.float64)
    assert x64.dtype == torch.float64
    torch.testing.assert_close(x64.float(), x32)


def test_global_generator_used_without_seed():
    torch.manual_seed(11)
    a = moons(30)
    torch.manual_seed(11)
    b = moons(30)
    assert torch.equal(a, b)


def test_generator_advances():
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(eight_gaussians(20, generator=gen), eight_gaussians(20, generator=gen))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("n", [0, -3])
def test_n_below_one_is_rejected(sampler, n):
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        sampler(n, seed=0)


def test_bad_arguments():
    with pytest.raises(TypeError, match="n must be an integer >= 1"):
        moons(2.5, seed=0)
    with pytest.raises(ValueError, match="either generator or seed"):
        moons(5, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match="torch.Generator or an int"):
        moons(5, generator="abc")
    with pytest.raises(ValueError, match="noise"):
        moons(5, noise=-1.0, seed=0)
    with pytest.raises(ValueError, match="centers must have shape"):
        gaussian_mixture(5, centers=[1.0, 2.0], seed=0)
    with pytest.raises(ValueError, match="std must be"):
        gaussian_mixture(5, centers=[[0.0, 0.0], [1.0, 1.0]], std=[1.0, 2.0, 3.0], seed=0)
    with pytest.raises(ValueError, match="weights must be"):
        gaussian_mixture(5, centers=[[0.0, 0.0], [1.0, 1.0]], weights=[-1.0, 1.0], seed=0)
    with pytest.raises(TypeError, match="floating-point"):
        moons(5, seed=0, dtype=torch.int64)
    with pytest.raises(ValueError, match="kind must be one of"):
        two_clouds(5, kind="spirals", seed=0)
    with pytest.raises(ValueError, match="d must be 2"):
        two_clouds(5, kind="moons", d=3, seed=0)
    with pytest.raises(ValueError, match="m must be an integer >= 1"):
        two_clouds(5, 0, seed=0)


def test_gaussian_mixture_any_dimension_and_statistics():
    centers = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, -10.0]])
    x = gaussian_mixture(4000, centers, std=0.5, weights=[3.0, 1.0], seed=0, dtype=torch.float64)
    assert x.shape == (4000, 3)
    near_second = (x[:, 0] > 5).double().mean().item()
    assert abs(near_second - 0.25) < 0.03  # component probabilities are normalized weights
    first = x[x[:, 0] < 5]
    assert first.mean(0).abs().max() < 0.06
    assert abs(first.std(0).mean().item() - 0.5) < 0.03


def test_gaussian_mixture_default_centres_and_per_component_std():
    x = gaussian_mixture(3000, seed=1)
    assert x.shape == (3000, 2)
    x = gaussian_mixture(2000, [[0.0, 0.0], [100.0, 0.0]], std=[0.0, 1.0], seed=0)
    at_origin = x[x[:, 0] < 50]
    assert torch.equal(at_origin, torch.zeros_like(at_origin))  # std 0: exactly the centre


def test_eight_gaussians_statistics():
    x = eight_gaussians(8000, seed=0, dtype=torch.float64)
    assert x.mean(0).abs().max() < 0.06
    radii = x.norm(dim=1)
    assert abs(radii.mean().item() - 2.0) < 0.05
    angles = torch.atan2(x[:, 1], x[:, 0])
    sector = torch.round(angles / (math.pi / 4)).remainder(8).long()
    counts = torch.bincount(sector, minlength=8).double() / 8000
    assert (counts - 1 / 8).abs().max() < 0.02


def test_moons_range_and_labels():
    x, labels = moons(2001, noise=0.0, seed=0, return_labels=True)
    assert x.shape == (2001, 2) and labels.shape == (2001,)
    assert labels.sum().item() == 2001 - 2001 // 2  # n // 2 upper, the rest lower
    assert x[:, 0].min() >= -1 - 1e-6 and x[:, 0].max() <= 2 + 1e-6
    assert x[:, 1].min() >= -0.5 - 1e-6 and x[:, 1].max() <= 1 + 1e-6
    upper, lower = x[labels == 0], x[labels == 1]
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(len(upper)))
    shifted = lower - torch.tensor([1.0, 0.5])
    torch.testing.assert_close(shifted.norm(dim=1), torch.ones(len(lower)))
    assert (upper[:, 1] >= -1e-6).all() and (lower[:, 1] <= 0.5 + 1e-6).all()
    noisy = moons(2000, noise=0.1, seed=0)
    assert noisy[:, 0].min() < -1 and noisy[:, 0].max() > 2


def test_checkerboard_only_dark_squares():
    x = checkerboard(4000, seed=0, dtype=torch.float64)
    assert x.min() >= -2 and x.max() <= 2
    cells = torch.floor(x + 2).long()  # side 1 for 4 squares over [-2, 2]
    assert ((cells.sum(1) % 2) == 0).all()
    assert x.mean(0).abs().max() < 0.1
    x3 = checkerboard(1000, squares=3, seed=0)
    cells3 = torch.floor((x3 + 2) / (4 / 3)).long()
    assert ((cells3.sum(1) % 2) == 0).all()


@pytest.mark.parametrize("kind", TWO_CLOUD_KINDS)
def test_two_clouds_kinds(kind):
    x, y = two_clouds(30, kind=kind, seed=0)
    assert x.shape == (30, 2) and y.shape == (30, 2)
    assert x.dtype == y.dtype == torch.float32
    assert not torch.allclose(x.mean(0), y.mean(0), atol=1e-3) or kind in (
        "eight_gaussians", "checkerboard"
    )
    x2, y2 = two_clouds(30, kind=kind, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, y3 = two_clouds(30, 45, kind=kind, seed=0, dtype=torch.float64)
    assert x3.shape == (30, 2) and y3.shape == (45, 2) and x3.dtype == torch.float64


def test_two_clouds_moons_are_the_two_halves():
    x, y = two_clouds(500, kind="moons", seed=0, dtype=torch.float64)
    assert x[:, 1].mean() > 0.4 and y[:, 1].mean() < 0.1
    assert abs(x[:, 0].mean().item() - 0.0) < 0.1 and abs(y[:, 0].mean().item() - 1.0) < 0.1


def test_two_clouds_gaussians_in_higher_dimension():
    x, y = two_clouds(3000, kind="gaussians", d=5, seed=0, dtype=torch.float64)
    assert x.shape == (3000, 5) and y.shape == (3000, 5)
    assert abs(x[:, 0].mean().item() + 1.5) < 0.05 and abs(y[:, 0].mean().item() - 1.5) < 0.05
    assert abs(x[:, 0].std().item() - 0.6) < 0.03
    x1, y1 = two_clouds(100, kind="gaussians", d=1, seed=0)
    assert x1.shape == (100, 1) and y1.shape == (100, 1)


def test_public_names():
    assert set(datasets.__all__) >= {
        "gaussian_mixture", "eight_gaussians", "moons", "checkerboard", "two_clouds"
    }


# ------------------------------------------------------------------ partial matches


def test_clouds_with_outliers_truth_and_outliers():
    from otkit.data import clouds_with_outliers

    m = clouds_with_outliers(500, outlier_fraction=0.2, seed=0, dtype=torch.float64)
    assert m.x.shape == (500, 2) and m.y.shape == (600, 2)
    assert m.y_unmatched.sum().item() == 100 and not m.x_unmatched.any()
    # inliers are the truth plus small noise; outliers sit far from every inlier
    assert (m.y[:500] - m.truth).norm(dim=1).mean().item() < 0.2
    assert torch.cdist(m.y[500:], m.y[:500]).min().item() > 3.0
    assert (m.y_labels[500:] == 3).all() and torch.equal(m.y_labels[:500], m.x_labels)
    again = clouds_with_outliers(500, outlier_fraction=0.2, seed=0, dtype=torch.float64)
    torch.testing.assert_close(again.y, m.y)
    with pytest.raises(ValueError, match="outlier_fraction must lie in"):
        clouds_with_outliers(10, outlier_fraction=1.0)


def test_tissue_slices_have_unmatched_strips():
    from otkit.data import tissue_slices

    match, pos_a, pos_b = tissue_slices(800, missing_fraction=0.25, seed=1, dtype=torch.float64)
    assert match.x.shape == (800, 20) and pos_a.shape == (800, 2)
    assert (pos_a[:, 0] >= 0.25).all() and (pos_b[:, 0] <= 0.75).all()
    torch.testing.assert_close(match.x_unmatched, pos_a[:, 0] > 0.75)
    share = match.x_unmatched.double().mean().item()
    assert abs(share - 1 / 3) < 0.06  # the strip is a third of slice A's area
    assert torch.isnan(match.truth[match.x_unmatched]).all()
    # each exclusive strip is a cell type of its own, absent from the other slice
    assert (match.x_labels[match.x_unmatched] == 5).all() and (match.y_labels[match.y_unmatched] == 6).all()
    assert not (match.y_labels == 5).any() and not (match.x_labels == 6).any()
    # expression is informative: same-type cells are closer than different-type cells
    same = match.x_labels[:, None] == match.y_labels[None]
    d2 = torch.cdist(match.x, match.y)
    assert d2[same].mean() < 0.7 * d2[~same].mean()
    with pytest.raises(ValueError, match="missing_fraction must lie in"):
        tissue_slices(10, missing_fraction=0.6)


def test_perturbed_expression_moves_only_the_chosen_genes():
    from otkit.elastic import perturbed_expression

    data = perturbed_expression(2000, 2000, 300, 10, fold=2.0, seed=0)
    assert data.control.shape == (2000, 300) and data.perturbed.shape == (2000, 300)
    assert (data.control >= 0).all() and data.genes.shape == (10,) and data.fold.shape == (10,)
    shift = data.perturbed.mean(0) - data.control.mean(0)
    others = torch.ones(300, dtype=torch.bool)
    others[data.genes] = False
    assert shift[others].abs().max() < 0.1
    assert (shift[data.genes].sign() == data.fold.sign()).all()
    assert shift[data.genes].abs().min() > 0.1
    again = perturbed_expression(2000, 2000, 300, 10, fold=2.0, seed=0)
    assert torch.equal(again.control, data.control) and torch.equal(again.genes, data.genes)
    with pytest.raises(ValueError, match="perturbed_genes"):
        perturbed_expression(5, 5, 3, 4)
