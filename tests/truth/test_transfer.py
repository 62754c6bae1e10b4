"""otkit.truth.transfer on planted activations whose truth directions and supports are known."""

from __future__ import annotations

import numpy as np
import pytest

from otkit.truth.study import fit_probe
from otkit.truth.transfer import (
    ALIGNMENTS,
    alignment,
    random_jaccard,
    support,
    transfer_study,
)


def planted(n: int = 800, d: int = 8, seed: int = 0, shared: bool = False):
    """Three tasks; task a's answer is right (y = 1) along its own coordinates {2a, 2a + 1}
    (``shared``: every task's along {0, 1})."""
    rng = np.random.default_rng(seed)
    xs, ys, ts = [], [], []
    for a in range(3):
        y = rng.integers(0, 2, n)
        x = rng.standard_normal((n, d))
        c = 0 if shared else 2 * a
        x[:, c: c + 2] += 2.0 * y[:, None]
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
    # the sparse probes themselves: right within a task, chance across
    assert np.all(np.diag(study.l1_auroc) > 0.85)
    assert np.all(np.abs(study.cross_task("l1") - 0.5) < 0.08)


def test_sparse_probes_transfer_when_tasks_share_their_truth():
    x, y, t = planted(shared=True)
    study = transfer_study(x, y, t, tasks=("a", "b", "c"), l1_C=0.05)
    assert np.all(study.cross_task("l1") > 0.85) and np.all(study.cross_task("none") > 0.85)
    assert all(set(s) <= {0, 1} and len(s) >= 1 for s in study.supports)


def test_sparse_auroc_matrix_matches_sklearn_pipelines_fitted_independently():
    """[a, b] of the L1 matrix is roc_auc_score on task b's test half of an sklearn
    StandardScaler + L1 LogisticRegression pipeline fitted on task a's training half."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, t = planted(n=300, seed=3)
    study = transfer_study(x, y, t, tasks=("a", "b", "c"), l1_C=0.1, seed=7)
    rng = np.random.default_rng(7)  # the halves, drawn as transfer_study documents
    halves = []
    for i in range(3):
        idx = rng.permutation(np.flatnonzero(t == i))
        halves.append((idx[: len(idx) // 2], idx[len(idx) // 2:]))
    for a in range(3):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(
            solver="liblinear", l1_ratio=1.0, C=0.1, random_state=7, max_iter=2000))
        pipe.fit(x[halves[a][0]], y[halves[a][0]])
        np.testing.assert_array_equal(study.supports[a], np.flatnonzero(pipe[-1].coef_[0]))
        for b in range(3):
            te = halves[b][1]
            assert study.l1_auroc[a, b] == pytest.approx(
                roc_auc_score(y[te], pipe.decision_function(x[te])), abs=1e-12)


def test_random_jaccard_matches_its_closed_form_when_one_set_is_everything():
    assert random_jaccard(10, 10, 3) == pytest.approx(0.3)
    assert random_jaccard(50, 1, 1, samples=20000) == pytest.approx(1 / 50, abs=0.005)


def test_support_and_study_check_their_inputs():
    x, y, t = planted(n=100)
    with pytest.raises(ValueError, match="C"):
        support(x, y, C=0.0)
    with pytest.raises(ValueError, match="penalty"):
        fit_probe(x, y, penalty="elasticnet")
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
    assert r["l1_transfer"] == "near chance" and r["l1_in_task"].low > 0.85
    assert r["l1_vs_l2"] == "tie"  # both at chance on disjoint truths
    shared = read_transfer([transfer_study(*planted(shared=True), tasks=("a", "b", "c"), seed=s)
                            for s in range(3)])
    assert shared["l1_transfer"] == "above chance"
    for method in ("mean", "diagonal", "gaussian"):
        assert r[f"aligned_{method}_transfer"] == "near chance"
    with pytest.raises(ValueError, match="studies"):
        read_transfer(studies[:1])
