"""Exact MIPS, the retrieval metrics, a minimal IVF index, and the semidiscrete link.

Exact search reuses :func:`otkit.semidiscrete.assign`: with the cost −⟨x, y⟩ and a zero
potential, the Laguerre cell of q is argmax_j ⟨q, k_j⟩ (blockwise, exact, any m); with
½‖x − y‖² it is the nearest key in L2.

Decoding a predicted key. A model returns a vector k̂(q); the retrieved key is the key
nearest to it, argmin_j ‖k̂ − k_j‖² (not argmax_j ⟨k̂, k_j⟩, which prefers long keys: on keys of
unequal norms the MIPS of k* itself need not be k*). The rank of the true key j*(q) in that
order gives the metrics over n queries:

    match rate = (1/n) Σ_i 1[rank_i = 1],   MRR = (1/n) Σ_i 1/rank_i,
    recall@k  = (1/n) Σ_i 1[rank_i ≤ k].

IVF (inverted file): k-means cells over the keys (Lloyd's iterations); a query is routed to the
``nprobe`` cells whose centroids score best (⟨r, c⟩ for MIPS routing, −‖r − c‖² for L2 routing,
r the query or a predicted key) and the exact MIPS of the *query* runs inside them
(:meth:`IVFIndex.scan`: the inverted lists of the probed cells only, so the work per query is
2·d per key scanned, sublinear in m). Recall = the fraction of queries whose true key lies in a
probed cell.

The OT link (Mousavi-Hosseini et al. 2025 assignment as a MIPS): the semidiscrete assignment
argmax_j g_j − c(x, y_j), with c = ½‖x − y‖² = ½‖x‖² + ½‖y‖² − ⟨x, y⟩, is

    argmax_j ⟨(x, 1), (y_j, g_j − ½‖y_j‖²)⟩,

a MIPS over the augmented keys (y_j, g_j − ½‖y_j‖²) ∈ R^{d+1} with the query (x, 1)
(:func:`augmented_keys`, :func:`augmented_queries`); for c = −⟨x, y⟩ the key is (y_j, g_j).
An amortized model of these keys assigns SD-FM pairs in one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..semidiscrete import assign
from ..validation import check_choice, check_count

__all__ = [
    "mips", "nearest_key", "key_ranks", "RetrievalMetrics", "retrieval_metrics", "IVFIndex",
    "kmeans", "augmented_keys", "augmented_queries",
]

_BLOCK = 4096


def _check_pair(name: str, q: torch.Tensor, keys: torch.Tensor) -> None:
    if not isinstance(keys, torch.Tensor) or keys.ndim != 2 or keys.shape[0] == 0:
        raise ValueError(f"keys must be a non-empty tensor of shape [m, d], got {getattr(keys, 'shape', keys)}")
    if not isinstance(q, torch.Tensor) or q.ndim != 2 or q.shape[1] != keys.shape[1]:
        raise ValueError(f"{name} must have shape [n, {keys.shape[1]}], got {tuple(getattr(q, 'shape', ()))}")
    if not torch.isfinite(q).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if not torch.isfinite(keys).all():
        raise ValueError("keys must be finite (no NaN or inf)")


def mips(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """argmax_j ⟨q_i, k_j⟩ ``[n]`` for ``queries: [n, d]``, ``keys: [m, d]`` (exact, blockwise)."""
    _check_pair("queries", queries, keys)
    return assign(queries, keys, keys.new_zeros(keys.shape[0]), cost="dot")


def nearest_key(points: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """argmin_j ‖p_i − k_j‖² ``[n]`` (exact, blockwise): the decoding of a predicted key."""
    _check_pair("points", points, keys)
    return assign(points, keys, keys.new_zeros(keys.shape[0]), cost="sqeuclidean")


def key_ranks(points: torch.Tensor, keys: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The rank (1 = nearest) of key ``target[i]`` among all keys by distance to ``points[i]``,
    ``[n]`` long; ties count in the point's favour (only strictly nearer keys push it down)."""
    _check_pair("points", points, keys)
    if target.shape != points.shape[:1]:
        raise ValueError(f"target must have shape [{points.shape[0]}], got {tuple(target.shape)}")
    half_sq = 0.5 * (keys * keys).sum(1)
    # score_j = ⟨p, k_j⟩ − ½‖k_j‖² = −½‖p − k_j‖² + ½‖p‖²
    own = (points * keys[target]).sum(1) - half_sq[target]
    ahead = torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
    rows = torch.arange(points.shape[0], device=points.device)
    for s in range(0, keys.shape[0], _BLOCK):
        scores = points @ keys[s : s + _BLOCK].T - half_sq[s : s + _BLOCK]
        here = (target >= s) & (target < s + scores.shape[1])
        scores[rows[here], target[here] - s] = -torch.inf  # never count the key against itself
        ahead += (scores > own.unsqueeze(1)).sum(1)
    return ahead + 1


@dataclass(frozen=True)
class RetrievalMetrics:
    """Match rate, mean reciprocal rank and recall@k of predicted keys over n queries."""

    match_rate: float
    mrr: float
    recall: dict[int, float]
    n: int


def retrieval_metrics(
    predicted: torch.Tensor, keys: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 10, 100)
) -> RetrievalMetrics:
    """Metrics of predicted keys ``[n, d]`` against the true key indices ``target: [n]``."""
    if not isinstance(predicted, torch.Tensor) or predicted.ndim != 2 or predicted.shape[0] == 0:
        raise ValueError("predicted must be a non-empty tensor of shape [n, d]")
    ranks = key_ranks(predicted, keys, target)
    recall = {int(check_count("ks", k)): float((ranks <= k).float().mean()) for k in ks}
    return RetrievalMetrics(
        match_rate=float((ranks == 1).float().mean()),
        mrr=float((1.0 / ranks.double()).mean()),
        recall=recall,
        n=int(predicted.shape[0]),
    )


def kmeans(
    points: torch.Tensor, cells: int, *, iters: int = 20, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means: (centroids ``[cells, d]``, labels ``[m]``); init from distinct points;
    an emptied cell keeps its centroid."""
    cells = check_count("cells", cells)
    iters = check_count("iters", iters)
    if cells > points.shape[0]:
        raise ValueError(f"cells must be <= the number of keys ({points.shape[0]}), got {cells}")
    start = torch.randperm(points.shape[0], generator=generator)[:cells].to(points.device)
    centroids = points[start].clone()
    labels = nearest_key(points, centroids)
    for _ in range(iters):
        sums = torch.zeros_like(centroids).index_add_(0, labels, points)
        counts = torch.bincount(labels, minlength=cells).to(points.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1)
        labels = nearest_key(points, centroids)
    return centroids, labels


@dataclass(frozen=True)
class IVFIndex:
    """An inverted file over ``keys: [m, d]``: ``centroids: [c, d]`` and ``labels: [m]``."""

    keys: torch.Tensor
    centroids: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def build(
        cls, keys: torch.Tensor, cells: int, *, iters: int = 20, generator: torch.Generator | None = None
    ) -> "IVFIndex":
        _check_pair("keys", keys, keys)
        centroids, labels = kmeans(keys, cells, iters=iters, generator=generator)
        return cls(keys, centroids, labels)

    @property
    def cells(self) -> int:
        return self.centroids.shape[0]

    def probe(self, route: torch.Tensor, nprobe: int, *, routing: str = "ip") -> torch.Tensor:
        """The ``nprobe`` best cells ``[n, nprobe]`` for routing vectors ``route: [n, d]``."""
        check_choice("routing", routing, ("ip", "l2"))
        nprobe = check_count("nprobe", nprobe)
        if nprobe > self.cells:
            raise ValueError(f"nprobe must be <= cells ({self.cells}), got {nprobe}")
        _check_pair("route", route, self.centroids)
        scores = route @ self.centroids.T
        if routing == "l2":
            scores = scores - 0.5 * (self.centroids * self.centroids).sum(1)
        return scores.topk(nprobe, dim=1).indices

    def scan(self, queries: torch.Tensor, cells: torch.Tensor, *, score: str = "ip") -> tuple[torch.Tensor, torch.Tensor]:
        """(best key index ``[n]`` within the given cells ``cells: [n, p]``, keys scanned ``[n]``).

        ``score="ip"``: argmax ⟨q, k⟩ (MIPS); ``score="l2"``: argmin ‖q − k‖², i.e. argmax
        ⟨q, k⟩ − ½‖k‖² (the decoding of a predicted key). The inverted lists are scanned cell
        by cell, each against the queries that probe it, so the work is Σ_i scanned_i · d
        (sublinear in m at nprobe < cells), not n · m · d. Ties go to the lower key index."""
        check_choice("score", score, ("ip", "l2"))
        _check_pair("queries", queries, self.keys)
        if (not isinstance(cells, torch.Tensor) or cells.ndim != 2 or cells.shape[0] != queries.shape[0]
                or cells.dtype not in (torch.int32, torch.int64)):
            raise ValueError(f"cells must be an integer tensor of shape [{queries.shape[0]}, nprobe]")
        if cells.numel() and (cells.min() < 0 or cells.max() >= self.cells):
            raise ValueError(f"cells must hold cell indices in [0, {self.cells})")
        n = queries.shape[0]
        best = torch.full((n,), -torch.inf, dtype=queries.dtype, device=queries.device)
        arg = torch.full((n,), self.keys.shape[0], dtype=torch.long, device=queries.device)
        order, offsets = self._lists
        keys = self.keys.to(queries.dtype)
        half_sq = 0.5 * (keys * keys).sum(1) if score == "l2" else None
        for c in torch.unique(cells).tolist():
            rows = (cells == c).any(1).nonzero().squeeze(1)
            members = order[offsets[c] : offsets[c + 1]]
            if members.numel() == 0:
                continue
            scores = queries[rows] @ keys[members].T
            if half_sq is not None:
                scores = scores - half_sq[members]
            value, local = scores.max(1)
            index = members[local]
            # strictly better, or equal with a lower index: the full scan's tie-breaking
            better = (value > best[rows]) | ((value == best[rows]) & (index < arg[rows]))
            best[rows] = torch.where(better, value, best[rows])
            arg[rows] = torch.where(better, index, arg[rows])
        sizes = torch.bincount(self.labels, minlength=self.cells)
        scanned = sizes[cells].sum(1)
        return arg, scanned

    @property
    def _lists(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The inverted lists: keys sorted by cell (``order: [m]``, within a cell by index) and
        ``offsets: [cells + 1]``."""
        cached = self.__dict__.get("_lists_cache")
        if cached is None:
            order = torch.sort(self.labels, stable=True).indices
            counts = torch.bincount(self.labels, minlength=self.cells)
            offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
            cached = (order, offsets)
            object.__setattr__(self, "_lists_cache", cached)  # frozen dataclass: a private cache
        return cached

    def search(
        self, queries: torch.Tensor, nprobe: int, *, route: torch.Tensor | None = None, routing: str = "ip",
        score: str = "ip",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(best key index ``[n]`` by exact ⟨q, k⟩ (``score="ip"``) or nearest in L2
        (``score="l2"``) within the probed cells, keys scanned ``[n]``). ``route`` (default: the
        queries) picks the cells, e.g. a model's predicted keys."""
        _check_pair("queries", queries, self.keys)
        route = queries if route is None else route
        if route.shape != queries.shape:
            raise ValueError(f"route must have the queries' shape {tuple(queries.shape)}, got {tuple(route.shape)}")
        return self.scan(queries, self.probe(route, nprobe, routing=routing), score=score)

    def recall(
        self, queries: torch.Tensor, target: torch.Tensor, nprobe: int, *, route: torch.Tensor | None = None,
        routing: str = "ip",
    ) -> float:
        """Fraction of queries whose true key ``target: [n]`` lies in a probed cell."""
        cells = self.probe(queries if route is None else route, nprobe, routing=routing)
        return float((cells == self.labels[target].unsqueeze(1)).any(1).float().mean())


def augmented_keys(y: torch.Tensor, g: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    """(y_j, g_j − ½‖y_j‖²) ``[N, d + 1]`` (``"sqeuclidean"``) or (y_j, g_j) (``"dot"``): the keys
    whose MIPS with (x, 1) is the semidiscrete assignment argmax_j g_j − c(x, y_j)."""
    check_choice("cost", cost, ("sqeuclidean", "dot"))
    if y.ndim != 2 or g.shape != y.shape[:1]:
        raise ValueError(f"g must have shape [{y.shape[0]}] for y of shape [N, d], got {tuple(g.shape)}")
    bias = g - 0.5 * (y * y).sum(1) if cost == "sqeuclidean" else g
    return torch.cat([y, bias.unsqueeze(1)], dim=1)


def augmented_queries(x: torch.Tensor) -> torch.Tensor:
    """(x_i, 1) ``[n, d + 1]``."""
    if x.ndim != 2:
        raise ValueError(f"x must have shape [n, d], got {tuple(x.shape)}")
    return torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
