"""otkit.amips.search against brute force (numpy / scipy), the IVF index at full probing, and the
semidiscrete assignment as a MIPS over augmented keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from otkit.amips import (
    IVFIndex,
    augmented_keys,
    augmented_queries,
    key_ranks,
    kmeans,
    mips,
    nearest_key,
    retrieval_metrics,
)
from otkit.semidiscrete import assign


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(9000, 6, generator=g, dtype=torch.float64)  # > one 4096 block
    q = torch.randn(300, 6, generator=g, dtype=torch.float64)
    return q, keys


def test_mips_and_nearest_match_brute_force(cloud):
    q, keys = cloud
    assert np.array_equal(mips(q, keys).numpy(), (q.numpy() @ keys.numpy().T).argmax(1))
    assert np.array_equal(nearest_key(q, keys).numpy(), cdist(q.numpy(), keys.numpy()).argmin(1))


def test_ranks_and_metrics_match_brute_force(cloud):
    q, keys = cloud
    target = torch.randint(keys.shape[0], (q.shape[0],), generator=torch.Generator().manual_seed(1))
    dist = cdist(q.numpy(), keys.numpy())
    own = dist[np.arange(q.shape[0]), target.numpy()]
    expected = (dist < own[:, None]).sum(1) + 1
    ranks = key_ranks(q, keys, target).numpy()
    assert np.array_equal(ranks, expected)
    m = retrieval_metrics(q, keys, target, ks=(1, 100, 3000))
    assert m.mrr == pytest.approx(np.mean(1.0 / expected))
    assert m.recall[3000] == pytest.approx(np.mean(expected <= 3000))
    assert m.match_rate == pytest.approx(np.mean(expected == 1))
    perfect = retrieval_metrics(keys[target], keys, target)
    assert perfect.match_rate == 1.0 and perfect.mrr == 1.0


def test_kmeans_labels_are_nearest_centroids(cloud):
    _, keys = cloud
    centroids, labels = kmeans(keys, 12, iters=5, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(labels.numpy(), cdist(keys.numpy(), centroids.numpy()).argmin(1))
    for c in range(12):  # Lloyd's fixed point after an update: centroid = mean of its cell
        members = keys[labels == c]
        if len(members):
            assert torch.linalg.norm(members.mean(0) - centroids[c]) < 0.5


def test_ivf_full_probe_is_exact_and_partial_probe_is_not(cloud):
    q, keys = cloud
    index = IVFIndex.build(keys, 32, iters=5, generator=torch.Generator().manual_seed(0))
    target = mips(q, keys)
    found, scanned = index.search(q, 32)
    assert torch.equal(found, target)
    assert (scanned == keys.shape[0]).all()
    assert index.recall(q, target, 32) == 1.0
    found1, scanned1 = index.search(q, 1)
    recall1 = index.recall(q, target, 1)
    assert recall1 == pytest.approx((found1 == target).float().mean().item())
    assert recall1 < 1.0 and (scanned1 < keys.shape[0]).all()
    # routing by the true key's position (L2 to centroids) finds its cell at nprobe = 1
    assert index.recall(q, target, 1, route=keys[target], routing="l2") == 1.0


@pytest.mark.parametrize("cost", ["sqeuclidean", "dot"])
def test_semidiscrete_assignment_is_augmented_mips(cost):
    g = torch.Generator().manual_seed(3)
    y = torch.randn(500, 3, generator=g, dtype=torch.float64)
    pot = torch.randn(500, generator=g, dtype=torch.float64)
    x = torch.randn(400, 3, generator=g, dtype=torch.float64)
    direct = assign(x, y, pot, cost=cost)
    via_mips = mips(augmented_queries(x), augmented_keys(y, pot, cost))
    assert torch.equal(direct, via_mips)
    # brute force in numpy: argmax_j g_j − c(x, y_j)
    c = 0.5 * cdist(x.numpy(), y.numpy(), "sqeuclidean") if cost == "sqeuclidean" else -(x.numpy() @ y.numpy().T)
    assert np.array_equal(direct.numpy(), (pot.numpy()[None] - c).argmax(1))


def test_bad_inputs(cloud):
    q, keys = cloud
    with pytest.raises(ValueError, match="queries must have shape"):
        mips(q[:, :3], keys)
    with pytest.raises(ValueError, match="keys must be"):
        mips(q, keys[:0])
    with pytest.raises(ValueError, match="finite"):
        mips(q * float("nan"), keys)
    with pytest.raises(ValueError, match="target"):
        key_ranks(q, keys, torch.zeros(3, dtype=torch.long))
    index = IVFIndex.build(keys[:200], 4, iters=2)
    with pytest.raises(ValueError, match="nprobe"):
        index.search(q, 5)
    with pytest.raises(ValueError, match="routing"):
        index.search(q, 1, routing="cos")
    with pytest.raises(ValueError, match="cells"):
        kmeans(keys[:3], 4)
    with pytest.raises(ValueError, match="g must have shape"):
        augmented_keys(keys, torch.zeros(3))
    with pytest.raises(ValueError, match="cost"):
        augmented_keys(keys, torch.zeros(keys.shape[0]), "euclidean")
