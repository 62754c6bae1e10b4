"""The learned cluster router and the IVF scan: cell supports against numpy brute force, the
multi-output ICNN's convexity, the router's exactness when it routes to the right cell, and the
IVF scan at full probing against the full scans."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from otkit.amips import IVFIndex, mips, nearest_key
from otkit.amips.router import ClusterRouter, cell_support, fit_router
from otkit.amips.study import StudyConfig, router_study
from otkit.nn import ICNN


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(600, 5, generator=g, dtype=torch.float64)
    q = torch.randn(300, 5, generator=g, dtype=torch.float64)
    index = IVFIndex.build(keys, 8, iters=5, generator=torch.Generator().manual_seed(1))
    return q, keys, index


def test_cell_support_is_the_per_cell_max(setup):
    q, keys, index = setup
    h = cell_support(q, keys, index.labels, index.cells).numpy()
    s, lab = q.numpy() @ keys.numpy().T, index.labels.numpy()
    for c in range(index.cells):
        assert np.allclose(h[:, c], s[:, lab == c].max(1))
    assert np.allclose(h.max(1), s.max(1))  # h_K = max_c h_{K_c}


def test_multi_output_icnn_is_convex_in_each_output():
    net = ICNN(3, (16, 16), out=4, generator=torch.Generator().manual_seed(0)).double()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(500, 3, generator=g, dtype=torch.float64), torch.randn(500, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        fa, fb, fm = net(a), net(b), net((a + b) / 2)
    assert fm.shape == (500, 4)
    assert (fm <= (fa + fb) / 2 + 1e-10).all()
    assert ICNN(3, (16, 16))(a.float()).shape == (500,)  # out = 1 keeps the scalar shape


def test_scan_at_full_probing_equals_the_full_scans(setup):
    q, keys, index = setup
    every = torch.arange(index.cells).expand(q.shape[0], -1)
    found, scanned = index.scan(q, every)
    assert torch.equal(found, mips(q, keys)) and (scanned == keys.shape[0]).all()
    assert torch.equal(index.scan(q, every, score="l2")[0], nearest_key(q, keys))
    # brute force in numpy, independent of the library's scans
    assert np.array_equal(found.numpy(), (q.numpy() @ keys.numpy().T).argmax(1))


def test_right_cell_gives_the_true_argmax(setup):
    q, keys, index = setup
    target = mips(q, keys)
    right = index.labels[target].unsqueeze(1)
    wrong = (right + 1) % index.cells
    assert torch.equal(index.scan(q, right)[0], target)
    assert torch.equal(index.scan(q, torch.cat([wrong, right], 1))[0], target)
    router = ClusterRouter(index, (16, 16), generator=torch.Generator().manual_seed(0)).double()
    fit_router(router, lambda n, g: torch.randn(n, 5, generator=g, dtype=torch.float64), steps=100)
    hit = router.probe(q, 1)[:, 0] == index.labels[target]
    assert 0 < hit.sum() < q.shape[0] or hit.all()
    found, scanned = router.search(q, 1)
    assert torch.equal(found[hit], target[hit])  # routed to the right cell: exact
    assert (found[~hit] != target[~hit]).all()  # the wrong cell cannot hold the true key
    assert router.convex and router.flops() == 2 * sum(p.numel() for p in router.parameters())


def test_router_study_rows_and_verdicts():
    study = router_study(StudyConfig(m=400, d=4, clusters=4, steps=10), seeds=(0, 1), cells=8,
                         nprobes=(1, 2, 8), hidden=(8,), steps=20, n_test=100)
    assert len(study.rows) == 2 * 3 * 2
    assert all(0 <= r["recall"] <= 1 and r["flops"] > 0 for r in study.rows)
    assert all(r["recall"] == 1.0 for r in study.rows if r["nprobe"] == 8)  # every cell probed
    assert len(study.router_recall) == len(study.raw_recall) == 2
    assert study.comparison.verdict in ("lower", "higher", "tie")


def test_bad_inputs(setup):
    q, keys, index = setup
    with pytest.raises(TypeError, match="index"):
        ClusterRouter(keys)
    router = ClusterRouter(index, (4,))
    with pytest.raises(ValueError, match="nprobe"):
        router.probe(q.float(), 9)
    with pytest.raises(ValueError, match="q must"):
        router(q[:, :3].float())
    with pytest.raises(ValueError, match="cells must"):
        index.scan(q, torch.full((q.shape[0], 1), 8))
    with pytest.raises(ValueError, match="cells must"):
        index.scan(q, torch.zeros(q.shape[0], 1))
    with pytest.raises(ValueError, match="score"):
        index.scan(q, torch.zeros(q.shape[0], 1, dtype=torch.long), score="cos")
    with pytest.raises(ValueError, match="labels"):
        cell_support(q, keys, index.labels[:5], index.cells)
    with pytest.raises(TypeError, match="router"):
        fit_router(index, lambda n, g: q)
    with pytest.raises(ValueError, match="seeds"):
        router_study(StudyConfig(m=400, d=4), seeds=(0,))
    with pytest.raises(ValueError, match="out"):
        ICNN(3, (4,), out=0)
