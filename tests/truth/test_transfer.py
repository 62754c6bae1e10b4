"""otkit.truth.transfer on planted activations whose truth directions and supports are known."""

from __future__ import annotations

import numpy as np
import pytest

from otkit.truth.transfer import (
    ALIGNMENTS,
    alignment,
    random_jaccard,
    support,
    transfer_study,
)


def planted(n: int = 800, d: int = 8, seed: int = 0):
    """Three tasks; task a's answer is right (y = 1) along its own coordinates {2a, 2a + 1}."""
    rng = np.random.default_rng(seed)
    xs, ys, ts = [], [], []
    for a in range(3):
        y = rng.integers(0, 2, n)
        x = rng.standard_normal((n, d))
        x[:, 2 * a: 2 * a + 2] += 2.0 * y[:, None]
        xs.append(x), ys.append(y), ts.append(np.full(n, a))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)


def test_maps_push_the_source_law_onto_the_target_law():
    rng = np.random.default_rng(0)
    source = rng.standard_normal((4000, 3)) @ np.diag([3.0, 0.5, 1.0]) + 5.0
    mix = np.array([[1.0, 0.6, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
    target = rng.standard_normal((4000, 3)) @ mix - 2.0
    for method in ("mean", "diagonal", "gaussian"):
        mapped = alignment(source, target, method, shrinkage=0.0)(source)
        assert np.allclose(mapped.mean(0), target.mean(0), atol=1e-8)
    diag = alignment(source, target, "diagonal")(source)
    assert np.allclose(diag.std(0), target.std(0), rtol=1e-8)
    gauss = alignment(source, target, "gaussian", shrinkage=0.0)(source)
    assert np.allclose(np.cov(gauss, rowvar=False), np.cov(target, rowvar=False), atol=1e-8)
    with pytest.raises(ValueError, match="method"):
        alignment(source, target, "procrustes")
    with pytest.raises(ValueError, match="shrinkage"):
        alignment(source, target, "gaussian", shrinkage=2.0)


def test_alignment_restores_transfer_when_tasks_differ_by_a_per_neuron_scale():
    """Task 1 carries task 0's truth on coordinate 1 only and a 100x louder, uninformative
    coordinate 0: task 0's probe (weight on both) drowns in it; rescaling neuron by neuron
    (label-free) brings it back."""
    rng = np.random.default_rng(1)
    n = 2000
    y0, y1 = rng.integers(0, 2, n), rng.integers(0, 2, n)
    x0 = rng.standard_normal((n, 2)) + 1.5 * y0[:, None]
    x1 = rng.standard_normal((n, 2))
    x1[:, 0] *= 100.0
    x1[:, 1] += 1.5 * y1
    study = transfer_study(np.concatenate([x0, x1]), np.concatenate([y0, y1]),
                           np.repeat([0, 1], n), tasks=("a", "b"))
    raw, mean = study.auroc["none"][0, 1], study.auroc["mean"][0, 1]
    assert raw < 0.56 and mean == pytest.approx(raw, abs=1e-12)  # a shift changes no AUROC
    assert study.auroc["diagonal"][0, 1] > 0.7 and study.auroc["gaussian"][0, 1] > 0.7


def test_disjoint_truths_give_chance_transfer_disjoint_supports_and_no_mixture_fix():
    x, y, t = planted()
    study = transfer_study(x, y, t, tasks=("a", "b", "c"), l1_C=0.05)
    assert set(study.auroc) == set(ALIGNMENTS)
    assert np.all(np.diag(study.auroc["none"]) > 0.85)
    for method in ALIGNMENTS:
        assert np.all(np.abs(study.cross_task(method) - 0.5) < 0.08), method
    assert np.all(study.pooled > 0.75)  # the mixture's probe knows every task it saw ...
    assert np.all(np.abs(study.leave_one_out - 0.5) < 0.08)  # ... and none it did not
    for a, s in enumerate(study.supports):
        assert set(s) <= {2 * a, 2 * a + 1} and len(s) >= 1
    assert np.nanmax(study.jaccard) == 0.0
    assert np.nanmin(study.random_jaccard) > 0.05


def test_random_jaccard_matches_its_closed_form_when_one_set_is_everything():
    assert random_jaccard(10, 10, 3) == pytest.approx(0.3)
    assert random_jaccard(50, 1, 1, samples=20000) == pytest.approx(1 / 50, abs=0.005)


def test_support_and_study_check_their_inputs():
    x, y, t = planted(n=100)
    with pytest.raises(ValueError, match="C"):
        support(x, y, C=0.0)
    with pytest.raises(ValueError, match="tasks"):
        transfer_study(x, y, t, tasks=("a", "b"))
    with pytest.raises(ValueError, match="acts"):
        transfer_study(x[:, :, None], y, t, tasks=("a", "b", "c"))


def test_read_transfer_gives_intervals_and_verdicts_over_splits():
    from otkit.truth.transfer import read_transfer

    x, y, t = planted()
    studies = [transfer_study(x, y, t, tasks=("a", "b", "c"), seed=s) for s in range(3)]
    r = read_transfer(studies)
    assert r["mixture"] == "near chance" and r["supports"] == "lower"
    assert r["pooled"].low > 0.7
    for method in ("mean", "diagonal", "gaussian"):
        assert r[f"aligned_{method}_transfer"] == "near chance"
    with pytest.raises(ValueError, match="studies"):
        read_transfer(studies[:1])
