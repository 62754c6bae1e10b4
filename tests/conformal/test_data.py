"""otkit.conformal.data: toy laws (checked by Monte Carlo against their formulas), the packaged
real datasets (checked against the CSV text and the README), and random splits."""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import math
import re
import statistics
from pathlib import Path

import pytest
import torch

import otkit
from otkit.conformal.data import (
    MULTIOUTPUT_DATASETS,
    TOY_KINDS,
    RegressionData,
    load_multioutput,
    make_toy_regression,
    sample_toy_targets,
    split_data,
)

DATA_DIR = Path(otkit.__file__).parent / "data" / "multioutput"
REPO = Path(__file__).resolve().parents[2]

# (rows, features, target names) as in otkit/data/multioutput/README.md.
TABLE = {
    "enb": (768, 8, ("Y1", "Y2")),
    "edm": (154, 16, ("DFlow", "DGap")),
    "slump": (103, 7, ("SLUMP_cm", "FLOW_cm", "Compressive_Strength_Mpa")),
    "scpf": (1137, 23, ("num_views", "num_votes", "num_comments")),
}


def _at(t: float, k: int, p: int = 1) -> torch.Tensor:
    """k copies of the feature vector (t, 0.5, ...)."""
    x = torch.full((k, p), 0.5, dtype=torch.float64)
    x[:, 0] = t
    return x


def _trend(t: float, d: int) -> torch.Tensor:
    # m(t)_j = cos(2πt + πj/d), written out again here as the reference.
    return torch.tensor([math.cos(2 * math.pi * t + math.pi * j / d) for j in range(d)])


# --------------------------------------------------------------------------------------------
# Toys
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TOY_KINDS)
@pytest.mark.parametrize("dim", [2, 3, 8])
def test_toy_shapes_dtypes_and_metadata(kind, dim):
    data = make_toy_regression(kind, 50, dim=dim, seed=0)
    assert isinstance(data, RegressionData)
    assert data.x.shape == (50, 1) and data.y.shape == (50, dim)
    assert data.x.dtype == data.y.dtype == torch.float64
    assert len(data) == 50 and data.n_features == 1 and data.n_targets == dim
    assert data.name == kind
    assert data.target_names == tuple(f"y{j}" for j in range(dim))
    assert ((data.x >= 0) & (data.x <= 1)).all()
    mean = data.conditional_mean(data.x)
    assert mean.shape == (50, dim) and mean.dtype == torch.float64
    mean32 = data.conditional_mean(data.x.float())
    assert mean32.dtype == torch.float32


def test_toy_n_features_and_dtype():
    data = make_toy_regression("banana", 30, dim=3, n_features=4, seed=1, dtype=torch.float32)
    assert data.x.shape == (30, 4) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.float32
    data64 = make_toy_regression("banana", 30, dim=3, n_features=4, seed=1)
    torch.testing.assert_close(data64.x.float(), data.x)
    torch.testing.assert_close(data64.y.float(), data.y)
    # Only the first feature matters.
    x = data64.x.clone()
    x[:, 1:] = torch.rand(30, 3, dtype=torch.float64)
    torch.testing.assert_close(data64.conditional_mean(x), data64.conditional_mean(data64.x))


@pytest.mark.parametrize("kind", TOY_KINDS)
def test_toy_reproducible(kind):
    a = make_toy_regression(kind, 40, dim=3, seed=7)
    b = make_toy_regression(kind, 40, dim=3, generator=7)
    c = make_toy_regression(kind, 40, dim=3, generator=torch.Generator().manual_seed(7))
    for other in (b, c):
        assert torch.equal(a.x, other.x) and torch.equal(a.y, other.y)
    d = make_toy_regression(kind, 40, dim=3, seed=8)
    assert not torch.equal(a.y, d.y)


def test_toy_global_generator():
    torch.manual_seed(3)
    a = make_toy_regression("mixture", 20)
    torch.manual_seed(3)
    b = make_toy_regression("mixture", 20)
    assert torch.equal(a.y, b.y)


@pytest.mark.parametrize("kind", TOY_KINDS)
@pytest.mark.parametrize("dim", [2, 4])
def test_conditional_mean_matches_monte_carlo(kind, dim):
    n = 20_000
    gen = torch.Generator().manual_seed(11)
    for t in (0.1, 0.5, 0.9):
        x = _at(t, n)
        y = sample_toy_targets(kind, x, dim=dim, generator=gen)
        mc, se = y.mean(0), y.std(0) / math.sqrt(n)
        exact = make_toy_regression(kind, 1, dim=dim, seed=0).conditional_mean(x[:1])[0]
        z = (mc - exact).abs() / se
        assert (z < 4.5).all(), (kind, dim, t, mc, exact, z)


def test_conditional_mean_by_hand():
    # Zero-mean noise: E[y | t] = m(t). At t = 1/4, m = (cos π/2, cos π) = (0, −1).
    for kind in ("unimodal_heteroscedastic", "bimodal_heteroscedastic", "banana"):
        f = make_toy_regression(kind, 1, seed=0).conditional_mean
        torch.testing.assert_close(
            f(_at(0.25, 1))[0], torch.tensor([0.0, -1.0], dtype=torch.float64)
        )
    # Mixture at t = 0: the centres are 1.2·(cos πk/2, −sin πk/2), i.e.
    # 1.2·{(1,0), (0,−1), (−1,0), (0,1)}. With weights (0.4, 0.3, 0.2, 0.1) the noise mean is
    # 1.2·(0.4 − 0.2, −0.3 + 0.1) = (0.24, −0.24).
    f = make_toy_regression("mixture", 1, seed=0).conditional_mean
    torch.testing.assert_close(f(_at(0.0, 1))[0], torch.tensor([1.24, -0.24], dtype=torch.float64))
    # d = 3 trend at t = 0: cos(0), cos(π/3), cos(2π/3).
    f = make_toy_regression("banana", 1, dim=3, seed=0).conditional_mean
    torch.testing.assert_close(f(_at(0.0, 1))[0], _trend(0.0, 3).double())


def test_unimodal_scale_and_correlation_vary_with_x():
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    stats = {}
    for t in (0.05, 0.95):
        eps = sample_toy_targets("unimodal_heteroscedastic", _at(t, n), dim=3, generator=gen)
        eps = eps - _trend(t, 3).double()
        corr = torch.corrcoef(eps.T)
        stats[t] = (eps.std(0), corr[0, 1].item(), corr[0, 2].item())
    for t, (std, c01, c02) in stats.items():
        sigma, rho = 0.1 + 0.9 * t, 0.8 * (2 * t - 1)
        torch.testing.assert_close(
            std, torch.full((3,), sigma, dtype=torch.float64), rtol=0.03, atol=0
        )
        assert abs(c01 - rho) < 0.03 and abs(c02 - rho**2) < 0.03
    assert stats[0.95][0][0] / stats[0.05][0][0] > 5
    assert stats[0.05][1] < -0.6 and stats[0.95][1] > 0.6


@pytest.mark.parametrize("dim", [2, 5])
def test_bimodal_has_two_separated_modes_with_opposite_scales(dim):
    gen = torch.Generator().manual_seed(1)
    n = 10_000
    for t in (0.1, 0.9):
        eps = sample_toy_targets("bimodal_heteroscedastic", _at(t, n), dim=dim, generator=gen)
        eps = eps - _trend(t, dim).double()
        proj = eps.sum(1) / math.sqrt(dim)  # along the mode axis (1, ..., 1)/√d; modes at ±√d
        plus = proj > 0
        assert abs(plus.double().mean().item() - 0.5) < 0.03
        # Almost nothing between the modes.
        assert (proj.abs() < 0.25 * math.sqrt(dim)).double().mean() < 0.01
        torch.testing.assert_close(
            eps[plus].mean(0), torch.ones(dim, dtype=torch.float64), atol=0.03, rtol=0
        )
        torch.testing.assert_close(
            eps[~plus].mean(0), -torch.ones(dim, dtype=torch.float64), atol=0.03, rtol=0
        )
        sd_plus = (eps[plus] - 1).std().item()
        sd_minus = (eps[~plus] + 1).std().item()
        assert abs(sd_plus - (0.05 + 0.4 * t)) < 0.02
        assert abs(sd_minus - (0.45 - 0.4 * t)) < 0.02


def test_mixture_components_weights_and_rotation():
    gen = torch.Generator().manual_seed(2)
    n = 20_000
    weights = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    for t in (0.0, 0.6):
        eps = sample_toy_targets("mixture", _at(t, n), generator=gen) - _trend(t, 2).double()
        angles = [math.pi / 2 * (k + t) for k in range(4)]
        # In 2-D, c_k = 1.2·(cos θ_k, cos(θ_k + π/2)) = 1.2·(cos θ_k, −sin θ_k).
        centres = 1.2 * torch.tensor([[math.cos(a), -math.sin(a)] for a in angles])
        nearest = torch.cdist(eps, centres.double()).argmin(1)
        freq = torch.bincount(nearest, minlength=4).double() / n
        torch.testing.assert_close(freq, weights, atol=0.015, rtol=0)
        resid = eps - centres.double()[nearest]
        assert abs(resid.std().item() - (0.1 + 0.2 * t)) < 0.01


def test_banana_is_curved_and_more_so_at_large_x():
    gen = torch.Generator().manual_seed(3)
    n = 20_000
    for t in (0.0, 1.0):
        eps = sample_toy_targets("banana", _at(t, n), dim=3, generator=gen) - _trend(t, 3).double()
        e0, e1 = eps[:, 0], eps[:, 1]
        s, kappa = 0.2 + 0.3 * t, 0.5 + t
        # Least-squares slope of ε₁ on ε₀² recovers the curvature κ(t).
        u = e0**2 - (e0**2).mean()
        slope = ((u * (e1 - e1.mean())).sum() / (u * u).sum()).item()
        assert abs(slope - kappa) < 0.05 * kappa
        # Dependent but uncorrelated: the shape is not elliptic.
        assert abs(torch.corrcoef(torch.stack([e0, e1]))[0, 1].item()) < 0.03
        assert abs(e0.std().item() - s) < 0.02 * s
        # The extra output is plain Gaussian noise of scale s(t), independent of ε₀.
        assert abs(eps[:, 2].std().item() - s) < 0.02 * s
        assert abs(torch.corrcoef(torch.stack([e0**2, eps[:, 2]]))[0, 1].item()) < 0.03


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"kind": "nope", "n": 10}, ValueError),
        ({"kind": 3, "n": 10}, ValueError),
        ({"kind": "banana", "n": 0}, ValueError),
        ({"kind": "banana", "n": 2.5}, TypeError),
        ({"kind": "banana", "n": 10, "dim": 1}, ValueError),
        ({"kind": "banana", "n": 10, "dim": 2.0}, TypeError),
        ({"kind": "banana", "n": 10, "n_features": 0}, ValueError),
        ({"kind": "banana", "n": 10, "dtype": torch.int64}, TypeError),
        ({"kind": "banana", "n": 10, "seed": 1, "generator": 2}, ValueError),
        ({"kind": "banana", "n": 10, "generator": "x"}, TypeError),
    ],
)
def test_toy_errors(kwargs, error):
    kind, n = kwargs.pop("kind"), kwargs.pop("n")
    with pytest.raises(error):
        make_toy_regression(kind, n, **kwargs)


def test_sample_toy_targets_errors_and_device_dtype():
    with pytest.raises(ValueError, match="x must have shape"):
        sample_toy_targets("banana", torch.zeros(5))
    with pytest.raises(TypeError, match="floating point"):
        sample_toy_targets("banana", torch.zeros(5, 1, dtype=torch.int64))
    y = sample_toy_targets("banana", torch.zeros(5, 1, dtype=torch.float32), dim=3, seed=0)
    assert y.shape == (5, 3) and y.dtype == torch.float32


def test_regression_data_validation():
    x, y = torch.zeros(4, 2), torch.zeros(4, 3)
    with pytest.raises(ValueError, match="same number of rows"):
        RegressionData(x, torch.zeros(5, 3), "a")
    with pytest.raises(TypeError, match="x must be floating"):
        RegressionData(torch.zeros(4, 2, dtype=torch.int64), y, "a")
    with pytest.raises(ValueError, match="y must have shape"):
        RegressionData(x, torch.zeros(4), "a")
    with pytest.raises(ValueError, match="NaN"):
        RegressionData(x, torch.full((4, 3), math.nan), "a")
    with pytest.raises(ValueError, match="target_names"):
        RegressionData(x, y, "a", target_names=("u",))
    data = RegressionData(x, y, "a")
    assert "n=4" in repr(data) and data.subset([0, 2]).x.shape == (2, 2)
    assert data.to(dtype=torch.float64).y.dtype == torch.float64


# --------------------------------------------------------------------------------------------
# Real datasets
# --------------------------------------------------------------------------------------------


def _csv_rows(name: str) -> tuple[list[str], list[list[str]]]:
    with open(DATA_DIR / f"{name}.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_dataset_list():
    assert set(MULTIOUTPUT_DATASETS) == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_real_dataset_shapes_names_and_first_row(name):
    n, p, targets = TABLE[name]
    data = load_multioutput(name)
    assert data.x.shape == (n, p) and data.y.shape == (n, len(targets))
    assert data.x.dtype == data.y.dtype == torch.float64
    assert data.name == name and data.conditional_mean is None
    assert data.target_names == targets
    header, rows = _csv_rows(name)
    assert data.feature_names == tuple(header[:p])
    assert len(rows) == n and len(header) == p + len(targets)
    assert torch.isfinite(data.x).all() and torch.isfinite(data.y).all()
    # The first row with no missing cell equals the CSV text.
    i = next(i for i, row in enumerate(rows) if all(v != "" for v in row))
    expected = torch.tensor([float(v) for v in rows[i]], dtype=torch.float64)
    torch.testing.assert_close(torch.cat([data.x[i], data.y[i]]), expected, rtol=0, atol=0)
    if name != "scpf":
        assert i == 0
    # No constant column (the loader drops none, and says so).
    assert (data.x.std(0) > 0).all() and (data.y.std(0) > 0).all()


def test_scpf_missing_cells_get_the_column_median():
    _, rows = _csv_rows("scpf")
    data = load_multioutput("scpf")
    n_missing = 0
    for j in range(23):
        observed = [float(r[j]) for r in rows if r[j] != ""]
        med = statistics.median(observed)
        for i, r in enumerate(rows):
            if r[j] == "":
                n_missing += 1
                assert data.x[i, j].item() == med
            else:
                assert data.x[i, j].item() == float(r[j])
    assert n_missing == 9255  # as stated in the README


def test_real_dataset_dtype():
    data = load_multioutput("slump", dtype=torch.float32)
    assert data.x.dtype == data.y.dtype == torch.float32


def test_real_dataset_errors():
    with pytest.raises(ValueError, match="name must be one of 'enb', 'edm', 'slump', 'scpf'"):
        load_multioutput("taxi")
    with pytest.raises(TypeError):
        load_multioutput(1)
    with pytest.raises(TypeError):
        load_multioutput("enb", dtype=torch.int32)


def test_packaged_files_match_readme_checksums():
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    for name in TABLE:
        digest = hashlib.sha256((DATA_DIR / f"{name}.csv").read_bytes()).hexdigest()
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}.csv`"))
        assert digest in row, name
        assert re.search(rf"\| {TABLE[name][0]} \| {TABLE[name][1]}\b", row), name
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir())
    assert total < 1_000_000


def test_package_data_ships_the_csvs():
    # Every packaged CSV is matched by the pyproject package-data globs, so it ships in wheels.
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["otkit"]
    for path in list(DATA_DIR.glob("*.csv")) + [DATA_DIR / "README.md"]:
        rel = path.relative_to(REPO / "otkit").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), rel


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def _indexed(n: int) -> RegressionData:
    """Rows whose x is their index, so a split can be traced back."""
    x = torch.arange(n, dtype=torch.float64)[:, None]
    return RegressionData(x, torch.cat([x, -x], 1), "idx", conditional_mean=lambda v: v)


def _ids(part: RegressionData) -> list[int]:
    return part.x[:, 0].long().tolist()


def test_split_fractions_partition_all_rows():
    data = _indexed(103)
    parts = split_data(data, (0.4, 0.2, 0.2, 0.2), seed=0)
    assert [len(p) for p in parts] == [41, 21, 21, 20]  # floors 41, 20, 20, 20; 2 rows by remainder
    ids = [i for p in parts for i in _ids(p)]
    assert sorted(ids) == list(range(103))
    for p in parts:
        assert p.name == "idx" and p.conditional_mean is data.conditional_mean
        torch.testing.assert_close(p.y, torch.cat([p.x, -p.x], 1))  # rows stay paired
    assert ids != list(range(103))  # shuffled


def test_split_largest_remainder_and_partial_fractions():
    assert [len(p) for p in split_data(_indexed(10), (1 / 3, 1 / 3, 1 / 3), seed=0)] == [4, 3, 3]
    parts = split_data(_indexed(10), (0.5, 0.25), seed=0)
    assert [len(p) for p in parts] == [5, 2]
    assert not set(_ids(parts[0])) & set(_ids(parts[1]))


def test_split_counts():
    parts = split_data(_indexed(50), (10, 5, 20), seed=1)
    assert [len(p) for p in parts] == [10, 5, 20]
    ids = [i for p in parts for i in _ids(p)]
    assert len(set(ids)) == 35


def test_split_reproducible():
    data = make_toy_regression("mixture", 60, seed=0)
    a = split_data(data, (0.5, 0.5), seed=4)
    b = split_data(data, (0.5, 0.5), generator=torch.Generator().manual_seed(4))
    c = split_data(data, (0.5, 0.5), seed=5)
    assert torch.equal(a[0].x, b[0].x) and torch.equal(a[1].y, b[1].y)
    assert not torch.equal(a[0].x, c[0].x)


@pytest.mark.parametrize(
    "sizes, error, match",
    [
        ((), TypeError, "non-empty sequence"),
        ("ab", TypeError, "sequence"),
        (0.5, TypeError, "sequence"),
        ((0.5, 3), TypeError, "not a mix"),
        ((True, 2), TypeError, "not a mix"),
        ((0.7, 0.4), ValueError, "more than 1"),
        ((0.5, 0.0), ValueError, r"\(0, 1\]"),
        ((0.5, -0.1), ValueError, r"\(0, 1\]"),
        ((0.5, math.nan), ValueError, r"\(0, 1\]"),
        ((6, 5), ValueError, "more than the 10 rows"),
        ((5, 0), ValueError, "at least 1"),
        ((0.98, 0.02), ValueError, "empty part"),
    ],
)
def test_split_errors(sizes, error, match):
    with pytest.raises(error, match=match):
        split_data(_indexed(10), sizes, seed=0)


def test_split_needs_regression_data():
    with pytest.raises(TypeError, match="RegressionData"):
        split_data((torch.zeros(3, 1), torch.zeros(3, 2)), (0.5, 0.5))
