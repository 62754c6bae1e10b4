"""Compressed caches at a fixed memory: the baselines Nectar is compared with.

Each keeps m entries per head out of a context's n cached tokens (memory m·2·d_head floats per
head, as m cached tokens) and reads them through the exact log-partition and attention output of
:func:`otkit.nectar.attention.cache_targets` with log-weights, so that log Z stays an estimate
of the full cache's:

* :func:`truncate`: the last m tokens (a sliding window), log-weights 0 (log Z under-estimated
  by the dropped mass);
* :func:`subsample`: m tokens drawn uniformly without replacement (the same positions in every
  head), log-weights log(n/m), so Σ_i w_i e^{s_i} is an unbiased estimate of Z(q);
* :func:`kmeans_cache`: per head, Lloyd's k-means on the keys (k-means++ seeding); centroid c
  with cluster C_c stands for its tokens with key μ_c = mean k_i, value mean v_i and
  log-weight log |C_c| (a first-order expansion of Σ_{i∈C_c} e^{⟨q,k_i⟩/√d}).

Shapes: the cache ``k, v: [1, H, n, d]`` (one context); each returns a
:class:`~otkit.nectar.attention.WeightedCache` with ``[1, H, m, d]`` entries.
"""

from __future__ import annotations

import math

import torch

from ..validation import check_count
from .attention import LayerCache, WeightedCache

__all__ = ["truncate", "subsample", "kmeans_cache", "BASELINES", "compress"]

#: The baselines, by name.
BASELINES = ("truncation", "subsample", "kmeans")


def _check(cache: LayerCache, m: int) -> int:
    if not isinstance(cache, LayerCache):
        raise TypeError(f"cache must be a LayerCache, got {type(cache).__name__}")
    m = check_count("m", m)
    if m > cache.n:
        raise ValueError(f"m={m} must be <= the cache's n={cache.n}")
    return m


def truncate(cache: LayerCache, m: int) -> WeightedCache:
    """The last ``m`` tokens of ``cache``."""
    m = _check(cache, m)
    return WeightedCache(cache.k[..., -m:, :], cache.v[..., -m:, :])


def subsample(cache: LayerCache, m: int, *, generator: torch.Generator | None = None
              ) -> WeightedCache:
    """``m`` tokens drawn without replacement, log-weights log(n/m)."""
    m = _check(cache, m)
    idx = torch.randperm(cache.n, generator=generator)[:m].sort().values
    log_w = torch.full(cache.k.shape[:-2] + (m,), math.log(cache.n / m), dtype=cache.k.dtype)
    return WeightedCache(cache.k[..., idx, :], cache.v[..., idx, :], log_w)


def _kmeans(x: torch.Tensor, m: int, iters: int, generator: torch.Generator | None
            ) -> torch.Tensor:
    """Lloyd's k-means of ``x: [n, d]`` into m clusters (k-means++ seeding); labels ``[n]``."""
    n = x.shape[0]
    centers = [x[torch.randint(n, (1,), generator=generator)]]
    d2 = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, m):
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
        c = x[torch.multinomial(p, 1, generator=generator)]
        centers.append(c)
        d2 = torch.minimum(d2, ((x - c) ** 2).sum(1))
    mu = torch.cat(centers)
    for _ in range(iters):
        labels = torch.cdist(x, mu).argmin(1)
        counts = torch.bincount(labels, minlength=m).to(x.dtype)
        sums = torch.zeros_like(mu).index_add_(0, labels, x)
        keep = counts > 0
        mu[keep] = sums[keep] / counts[keep].unsqueeze(1)
    return torch.cdist(x, mu).argmin(1)


def kmeans_cache(cache: LayerCache, m: int, *, iters: int = 10,
                 generator: torch.Generator | None = None) -> WeightedCache:
    """Per head, ``m`` k-means centroids of the keys with their clusters' mean values and
    log-counts (empty clusters get log-weight −inf: they hold nothing)."""
    m = _check(cache, m)
    if cache.k.shape[0] != 1:
        raise ValueError(f"cache must hold one context (batch 1), got {cache.k.shape[0]}")
    ks, vs, ws = [], [], []
    for head in range(cache.k.shape[1]):
        k, v = cache.k[0, head], cache.v[0, head]
        labels = _kmeans(k, m, iters, generator)
        counts = torch.bincount(labels, minlength=m).to(k.dtype)
        safe = counts.clamp_min(1).unsqueeze(1)
        ks.append(torch.zeros(m, k.shape[1], dtype=k.dtype).index_add_(0, labels, k) / safe)
        vs.append(torch.zeros(m, v.shape[1], dtype=v.dtype).index_add_(0, labels, v) / safe)
        ws.append(torch.where(counts > 0, counts.log(), torch.full_like(counts, -math.inf)))
    return WeightedCache(torch.stack(ks)[None], torch.stack(vs)[None], torch.stack(ws)[None])


def compress(method: str, cache: LayerCache, m: int, *,
             generator: torch.Generator | None = None) -> WeightedCache:
    """The baseline ``method`` (one of :data:`BASELINES`) at ``m`` entries per head."""
    if method == "truncation":
        return truncate(cache, m)
    if method == "subsample":
        return subsample(cache, m, generator=generator)
    if method == "kmeans":
        return kmeans_cache(cache, m, generator=generator)
    raise ValueError(f"method must be one of {BASELINES}, got {method!r}")
