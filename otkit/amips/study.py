"""The experiments of notebook 10: amortized MIPS on clustered keys, over seeds.

Problem (:func:`otkit.amips.data.cluster_problem`): m keys in d = 32 from anisotropic Gaussian
clusters, queries from a shifted mixture. Every model gets the paper's parameter budget
0.2·m·d (:func:`~otkit.amips.models.width_for_budget` at the given depth) and is trained by
:func:`~otkit.amips.train.fit` on exact targets with w_s = 0.01, w_k = 1 unless the variant
says otherwise. Scored on fresh queries by :func:`~otkit.amips.search.retrieval_metrics`.

Variants (:data:`VARIANTS`):

* ``convex``: SupportNet on an ICNN (softplus-positive weights, biases);
* ``unconstrained``: the same network with free weights (no convexity);
* ``convex_homogenized``: ``convex`` inside :class:`~otkit.amips.models.Homogenize`
  (1-homogeneous, convexity no longer guaranteed);
* ``convex_bias_free``: a bias-free ReLU ICNN (convex *and* 1-homogeneous by construction);
* ``convex_no_score``: ``convex`` trained with w_s = 0 (gradient matching only);
* ``keynet``, ``keynet_homogenized``, ``keynet_no_score``: the same for KeyNet.

:func:`claim_comparisons` reads the paper's claims as paired comparisons over seeds
(:func:`otkit.stats.compare` on the match rate: ``higher`` / ``lower`` / ``tie``).
:func:`ivf_study` measures IVF recall against total FLOPs for raw queries and for KeyNet's
predicted keys used as routing vectors (the network's FLOPs counted).
:func:`router_study` does the same for the router variant (:mod:`otkit.amips.router`: one
network regresses every k-means cell's support function and picks the cells to scan), over seeds.
:mod:`otkit.amips.sdfm` holds the OT link: a KeyNet over the augmented keys
(y_j, g_j − ½‖y_j‖²) of a fitted semidiscrete potential as an amortized SD-FM assigner, and
flows trained on its pairs.

Rows are plain dicts: ``variant``, ``seed``, ``match_rate``, ``mrr``, ``recall_10``,
``recall_100``, ``params``, ``width``, ``budget``, ``seconds``, ``final_loss``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..stats import Comparison, compare
from ..validation import check_choice, check_count, check_positive
from .data import MipsProblem, cluster_problem, digits_problem
from .models import MODELS, KeyNet, SupportNet, width_for_budget
from .router import ClusterRouter, fit_router
from .search import (
    IVFIndex,
    mips,
    retrieval_metrics,
)
from .train import fit

__all__ = [
    "Variant", "VARIANTS", "StudyConfig", "DIGITS", "build_model", "train_variant", "amips_study",
    "ClaimResult", "CLAIMS", "claim_comparisons", "mean_by_variant", "ivf_study", "model_flops",
    "recall_at_flops", "RouterStudy", "router_study",
]


@dataclass(frozen=True)
class Variant:
    """A model family (``"support"`` / ``"key"``) and its switches."""

    model: str
    positivity: str = "softplus"
    homogenize: bool = False
    bias: bool = True
    w_s: float | None = None  # None: the config's w_s


VARIANTS: dict[str, Variant] = {
    "convex": Variant("support"),
    "unconstrained": Variant("support", positivity="none"),
    "convex_homogenized": Variant("support", homogenize=True),
    "convex_bias_free": Variant("support", bias=False),
    "convex_no_score": Variant("support", w_s=0.0),
    "keynet": Variant("key"),
    "keynet_homogenized": Variant("key", homogenize=True),
    "keynet_no_score": Variant("key", w_s=0.0),
}


@dataclass(frozen=True)
class StudyConfig:
    """Sizes and training settings (defaults: the full run; notebook 10's quick run is smaller).

    ``data``: ``"clusters"`` (:func:`~otkit.amips.data.cluster_problem` with ``m`` keys in
    ``d`` dimensions) or ``"digits"`` (:func:`~otkit.amips.data.digits_problem`: ``m`` and
    ``d`` must be its 1,438 and 64, see :data:`DIGITS`)."""

    data: str = "clusters"
    m: int = 20_000
    d: int = 32
    clusters: int = 16
    shift: float = 1.0
    query_scale: float = 0.5
    budget_ratio: float = 0.2
    depth: int = 2
    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    w_s: float = 0.01
    w_k: float = 1.0
    n_test: int = 2000

    @property
    def budget(self) -> int:
        """The parameter budget, budget_ratio · m · d."""
        return int(self.budget_ratio * self.m * self.d)

    def __post_init__(self) -> None:
        check_choice("data", self.data, ("clusters", "digits"))
        if self.data == "digits" and (self.m, self.d) != (1438, 64):
            raise ValueError(f"the digits keys are m = 1438 in d = 64, got m = {self.m}, d = {self.d}")

    def problem(self, seed: int) -> MipsProblem:
        if self.data == "digits":
            return digits_problem(query_scale=self.query_scale)
        return cluster_problem(
            self.m, self.d, clusters=self.clusters, shift=self.shift, query_scale=self.query_scale, seed=seed
        )


#: The real set: 8×8 digits as keys, held-out digits plus noise as queries.
DIGITS = StudyConfig(data="digits", m=1438, d=64)


def build_model(variant: Variant, config: StudyConfig, seed: int) -> torch.nn.Module:
    """The variant's network at the config's budget and depth (initialized from ``seed``); the
    width is the one that fills the budget *with* biases, so a bias-free variant stays below."""
    check_choice("variant.model", variant.model, MODELS)
    width = width_for_budget(variant.model, config.d, config.budget, config.depth)
    hidden = (width,) * config.depth
    g = torch.Generator().manual_seed(int(seed))
    if variant.model == "support":
        return SupportNet(
            config.d, hidden, positivity=variant.positivity, homogenize=variant.homogenize,
            bias=variant.bias, generator=g,
        )
    return KeyNet(config.d, hidden, homogenize=variant.homogenize, generator=g)


def train_variant(
    name: str, config: StudyConfig, seed: int, *, problem: MipsProblem | None = None,
    test: tuple[torch.Tensor, torch.Tensor] | None = None, return_model: bool = False,
):
    """Train variant ``name`` on seed ``seed``; the row (and the model if ``return_model``)."""
    check_choice("name", name, VARIANTS)
    variant = VARIANTS[name]
    problem = config.problem(seed) if problem is None else problem
    if test is None:
        q = problem.queries(config.n_test, torch.Generator().manual_seed(10_000 + seed))
        test = (q, mips(q, problem.keys))
    model = build_model(variant, config, seed)
    w_s = config.w_s if variant.w_s is None else variant.w_s
    result = fit(
        model, problem.keys, problem.queries, steps=config.steps, batch_size=config.batch_size,
        lr=config.lr, w_s=w_s, w_k=config.w_k, generator=torch.Generator().manual_seed(20_000 + seed),
    )
    metrics = retrieval_metrics(model.key(test[0]), problem.keys, test[1], ks=(1, 10, 100))
    width = width_for_budget(variant.model, config.d, config.budget, config.depth)
    row = {
        "variant": name, "seed": int(seed), "match_rate": metrics.match_rate, "mrr": metrics.mrr,
        "recall_10": metrics.recall[10], "recall_100": metrics.recall[100],
        "params": sum(p.numel() for p in model.parameters()), "width": width,
        "budget": config.budget, "seconds": result.seconds,
        "final_loss": float(result.losses[-max(1, config.steps // 20):].mean()),
    }
    return (row, model) if return_model else row


def amips_study(
    config: StudyConfig, seeds: Sequence[int] = (0, 1, 2), variants: Sequence[str] | None = None,
) -> list[dict]:
    """Every variant on every seed (same keys and test queries for all variants of a seed)."""
    variants = list(VARIANTS) if variants is None else list(variants)
    for v in variants:
        check_choice("variants", v, VARIANTS)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    rows = []
    for seed in seeds:
        problem = config.problem(seed)
        q = problem.queries(config.n_test, torch.Generator().manual_seed(10_000 + seed))
        test = (q, mips(q, problem.keys))
        for v in variants:
            rows.append(train_variant(v, config, seed, problem=problem, test=test))
    return rows


def mean_by_variant(rows: Sequence[dict], metric: str = "match_rate") -> dict[str, float]:
    """Mean of ``metric`` over seeds, per variant."""
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(r["variant"], []).append(float(r[metric]))
    return {k: float(np.mean(v)) for k, v in out.items()}


#: The paper's claims as (claim, variant A, variant B): "A's match rate is higher than B's".
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("convex >= unconstrained", "convex", "unconstrained"),
    ("homogenize helps (SupportNet)", "convex_homogenized", "convex"),
    ("bias-free ICNN helps (SupportNet)", "convex_bias_free", "convex"),
    ("score term helps (SupportNet)", "convex", "convex_no_score"),
    ("homogenize helps (KeyNet)", "keynet_homogenized", "keynet"),
    ("score term helps (KeyNet)", "keynet", "keynet_no_score"),
)


@dataclass(frozen=True)
class ClaimResult:
    """One claim read on ``metric``: means of A and B, the paired comparison of A − B, and
    ``verdict``: ``"win"`` (A higher), ``"loss"`` (A lower) or ``"tie"``."""

    claim: str
    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    comparison: Comparison
    verdict: str


def claim_comparisons(rows: Sequence[dict], metric: str = "match_rate") -> list[ClaimResult]:
    """Each claim of :data:`CLAIMS` whose two variants are in ``rows``, paired by seed."""
    table: dict[tuple[str, int], float] = {(r["variant"], r["seed"]): float(r[metric]) for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    out = []
    for claim, a, b in CLAIMS:
        if not all((v, s) in table for v in (a, b) for s in seeds):
            continue
        xa = [table[(a, s)] for s in seeds]
        xb = [table[(b, s)] for s in seeds]
        c = compare(xa, xb)
        verdict = {"higher": "win", "lower": "loss", "tie": "tie"}[c.verdict]
        out.append(ClaimResult(claim, a, b, metric, float(np.mean(xa)), float(np.mean(xb)), c, verdict))
    return out


def model_flops(model: torch.nn.Module) -> int:
    """FLOPs per query of predicting a key: 2 per weight for a forward pass (KeyNet), three
    times that for a SupportNet (a forward and a backward pass for ∇f)."""
    params = sum(p.numel() for p in model.parameters())
    return 2 * params * (3 if isinstance(model, SupportNet) else 1)


def ivf_study(
    model: torch.nn.Module, problem: MipsProblem, *, cells: int = 64, nprobes: Sequence[int] = (1, 2, 4, 8, 16),
    n_test: int = 2000, seed: int = 0,
) -> list[dict]:
    """IVF recall against total FLOPs per query for three routings: the raw query by inner
    product (``"query"``, the standard IVF-MIPS coarse step), and the model's predicted key k̂ by
    L2 to the centroids (``"predicted_l2"``) or by inner product (``"predicted_ip"``). FLOPs =
    2·cells·d (routing) + 2·scanned·d (exact ⟨q, k⟩ in the probed cells) + the model's
    (:func:`model_flops`) for the predicted routings. Rows: ``routing``, ``nprobe``,
    ``recall``, ``flops``."""
    cells = check_count("cells", cells)
    index = IVFIndex.build(problem.keys, cells, generator=torch.Generator().manual_seed(seed))
    q = problem.queries(n_test, torch.Generator().manual_seed(30_000 + seed))
    target = mips(q, problem.keys)
    predicted = model.key(q)
    d = problem.dim
    rows = []
    for routing, route, mode, extra in (
        ("query", None, "ip", 0), ("predicted_l2", predicted, "l2", model_flops(model)),
        ("predicted_ip", predicted, "ip", model_flops(model)),
    ):
        for nprobe in nprobes:
            if nprobe > cells:
                continue
            found, scanned = index.search(q, nprobe, route=route, routing=mode)
            rows.append({
                "routing": routing, "nprobe": int(nprobe),
                "recall": float((found == target).float().mean()),
                "flops": float(2 * cells * d + 2 * d * scanned.double().mean() + extra),
            })
    return rows


def recall_at_flops(rows: Sequence[dict], routing: str, flops: float) -> float:
    """Recall of ``routing`` interpolated (linearly in log FLOPs) at ``flops``; NaN outside
    its measured range."""
    pts = sorted((r["flops"], r["recall"]) for r in rows if r["routing"] == routing)
    if not pts:
        raise ValueError(f"routing {routing!r} has no rows")
    x = np.log([p[0] for p in pts])
    y = [p[1] for p in pts]
    f = float(np.log(check_positive("flops", flops)))
    if f < x[0] - 1e-12 or f > x[-1] + 1e-12:
        return float("nan")
    return float(np.interp(f, x, y))


@dataclass(frozen=True)
class RouterStudy:
    """The learned cluster router against the IVF coarse step with raw queries, over seeds.

    Attributes:
        rows: per (seed, routing, nprobe): ``seed``, ``routing`` (``"query"`` or ``"router"``),
            ``nprobe``, ``recall`` (share of queries whose returned key is the true argmax),
            ``flops`` (per query, the router's forward pass included), ``params`` (router).
        at_equal_nprobe: per seed, the router's recall at the smallest nprobe minus the raw
            queries' at the same nprobe (the ranking of the cells alone, FLOPs ignored).
        router_recall, raw_recall: per seed, the router's recall at the smallest nprobe and the
            raw queries' recall interpolated at the same total FLOPs (:func:`recall_at_flops`).
        comparison: :func:`otkit.stats.compare` of ``router_recall`` against ``raw_recall``
            (paired by seed): ``higher`` means the router wins at equal FLOPs.
        comparison_nprobe: :func:`otkit.stats.compare` of the router's recall against the raw
            queries' at the same (smallest) nprobe: the ranking of the cells alone.
    """

    rows: list[dict]
    at_equal_nprobe: list[float]
    router_recall: list[float]
    raw_recall: list[float]
    comparison: Comparison
    comparison_nprobe: Comparison


def router_study(
    config: StudyConfig, seeds: Sequence[int] = (0, 1, 2), *, cells: int = 64, nprobes: Sequence[int] = (1, 2, 4, 8),
    hidden: tuple[int, ...] = (32, 32), steps: int = 500, lr: float = 3e-3, n_test: int = 2000,
) -> RouterStudy:
    """Per seed: the config's keys, an :class:`~otkit.amips.search.IVFIndex` of ``cells``
    k-means cells (the one :func:`ivf_study` builds), a :class:`~otkit.amips.router.ClusterRouter`
    (ICNN ``hidden``, trained ``steps`` Adam steps on exact cell supports), and the recall of
    both routings at each nprobe on ``n_test`` fresh queries. FLOPs per query: 2·cells·d for
    the centroid scoring of raw queries, the router's 2 per weight instead, plus 2·d per key
    scanned. The router gets no parameter budget of 0.2·m·d here: at that size its forward pass
    alone costs more than scanning several cells, so a small ICNN is used."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"seeds must hold at least 2 seeds (paired verdicts), got {seeds}")
    cells = check_count("cells", cells)
    nprobes = sorted({check_count("nprobes", p) for p in nprobes if p <= cells})
    if not nprobes:
        raise ValueError(f"nprobes must hold a probe count <= cells ({cells})")
    rows, at_equal, router_recall, raw_recall = [], [], [], []
    for seed in seeds:
        problem = config.problem(seed)
        d = problem.dim
        index = IVFIndex.build(problem.keys, cells, generator=torch.Generator().manual_seed(seed))
        router = ClusterRouter(index, hidden, generator=torch.Generator().manual_seed(40_000 + seed))
        fit_router(router, problem.queries, steps=steps, lr=lr, batch_size=config.batch_size,
                   generator=torch.Generator().manual_seed(50_000 + seed))
        q = problem.queries(n_test, torch.Generator().manual_seed(30_000 + seed))
        target = mips(q, problem.keys)
        params = sum(p.numel() for p in router.parameters())
        mine = []
        for nprobe in nprobes:
            for routing, (found, scanned), extra in (
                ("query", index.search(q, nprobe), 2 * cells * d),
                ("router", router.search(q, nprobe), router.flops()),
            ):
                row = {"seed": seed, "routing": routing, "nprobe": nprobe,
                       "recall": float((found == target).float().mean()),
                       "flops": float(extra + 2 * d * scanned.double().mean()), "params": params}
                rows.append(row)
                mine.append(row)
        first = {r["routing"]: r for r in mine if r["nprobe"] == nprobes[0]}
        at_equal.append(first["router"]["recall"] - first["query"]["recall"])
        raw = recall_at_flops(mine, "query", first["router"]["flops"])
        if np.isnan(raw):
            raise ValueError("the router's FLOPs at the smallest nprobe lie outside the raw queries' "
                             "measured range: add larger nprobes")
        router_recall.append(first["router"]["recall"])
        raw_recall.append(raw)
    same_probe = [r - a for r, a in zip(router_recall, at_equal)]
    return RouterStudy(rows, at_equal, router_recall, raw_recall, compare(router_recall, raw_recall),
                       compare(router_recall, same_probe))
