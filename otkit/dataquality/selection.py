"""Selecting pretraining documents at a fixed token budget: random, classifier-based quality
filtering (CQF), CRISP cluster resampling, the oracle density ratio, and an OT selection.

Nait Saada et al. (2025), "The Data-Quality Illusion" (arXiv:2510.00866). From a pool
D_pool = {x_i} (N documents) and a small HQ set D_HQ, each selector keeps k documents of the
pool (k = budget / T tokens, :func:`budget_count`):

* **random**: k documents uniformly without replacement.
* **CQF** (Brown et al. 2020; the paper's object of study): a logistic regression on hashed
  n-gram counts separates HQ (label 1) from pool (label 0); with balanced classes its odds
  estimate the density ratio, σ⁻¹(c(x)) ≈ log p_HQ(x)/p_pool(x). CQF keeps the k pool documents
  of highest score (a *threshold* on the estimated ratio): the paper's point is that this is
  not importance sampling, so it also filters out much of p_HQ itself.
* **oracle**: the exact log r(x) = log p_HQ(x) − log p_pool(x) (:mod:`~otkit.dataquality.corpus`),
  either thresholded like CQF (``mode="top"``) or used for importance resampling
  (``mode="sample"``: k draws without replacement with probabilities ∝ r(x), by the Gumbel
  top-k trick: the k largest log r_i + G_i, G_i ~ Gumbel(0, 1), are a successive sample
  without replacement ∝ r).
* **CRISP** (Grangier, Fan, Seto, Ablin 2024, clustered importance sampling): k-means on pool
  embeddings; the HQ set's cluster histogram h_c sets each cluster's quota k·h_c (capped by the
  cluster's size, the remainder spread by largest remainder); documents drawn uniformly within
  a cluster.
* **OT** (otkit's extension): an unbalanced entropic coupling of pool embeddings u_i to HQ
  embeddings v_j, KL-relaxed on the pool side (τ_a < 1) and exact on the HQ side,

      P = argmin ⟨P, C⟩ + ε KL(P | a⊗b) + ρ_a KL(P1 | a),  Pᵀ1 = b,  C_ij = ½‖u_i − v_j‖²

  (:func:`otkit.sinkhorn.sinkhorn`); every HQ document sends its mass to the pool documents
  near it, and the k pool documents receiving the most mass (P1)_i are kept.

Embeddings (:func:`embed_documents`) are hashed n-gram counts (L2-normalized) reduced by a
truncated SVD fitted on the pool: ``[N, dim]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

from ..sinkhorn import sinkhorn
from ..validation import check_choice, check_count, check_positive, check_tau

__all__ = [
    "Selection",
    "QualityClassifier",
    "budget_count",
    "hashed_ngrams",
    "fit_quality_classifier",
    "embed_documents",
    "select_top",
    "select_random",
    "select_cqf",
    "select_oracle",
    "select_crisp",
    "select_ot",
    "received_mass",
]


@dataclass(frozen=True, eq=False)
class Selection:
    """The kept pool documents.

    Attributes:
        method: the selector's name.
        index: ``[k]`` distinct pool indices (int64).
        scores: ``[N]`` the per-document score the selector ranked by (None for random and
            CRISP).
    """

    method: str
    index: np.ndarray
    scores: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.index.size)

    def tokens(self, length: int) -> int:
        """Tokens kept, for documents of ``length`` tokens."""
        return len(self) * int(length)


def budget_count(budget_tokens: int, length: int, pool_size: int) -> int:
    """k = ⌊budget / T⌋ documents of T = ``length`` tokens; at least one, at most the pool."""
    check_count("budget_tokens", budget_tokens)
    check_count("length", length)
    k = budget_tokens // length
    if k < 1:
        raise ValueError(f"budget_tokens={budget_tokens} is less than one document "
                         f"({length} tokens)")
    if k > pool_size:
        raise ValueError(f"budget_tokens={budget_tokens} asks for {k} documents but the pool "
                         f"has {pool_size}")
    return k


def _check_k(k: object, n: int) -> int:
    k = check_count("k", k)
    if k > n:
        raise ValueError(f"k={k} exceeds the pool size {n}")
    return k


def _docs(name: str, docs: object) -> np.ndarray:
    array = np.asarray(docs)
    if array.ndim != 2 or array.shape[0] == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty [N, T] integer array of token ids, got "
                         f"shape {array.shape} and dtype {array.dtype}")
    return array


def hashed_ngrams(docs: np.ndarray, *, ngram: int = 2, n_features: int = 2**12):
    """``[N, n_features]`` sparse: counts of token 1..``ngram``-grams, hashed
    (:class:`sklearn.feature_extraction.text.HashingVectorizer`, no sign flip), L2-normalized."""
    docs = _docs("docs", docs)
    check_count("ngram", ngram)
    vec = HashingVectorizer(analyzer="word", token_pattern=r"\S+", ngram_range=(1, ngram),
                            n_features=check_count("n_features", n_features),
                            alternate_sign=False, norm="l2", lowercase=False)
    return vec.transform([" ".join(map(str, d)) for d in docs])


@dataclass(frozen=True, eq=False)
class QualityClassifier:
    """A fitted HQ-vs-pool logistic regression on hashed n-grams (CQF's classifier).

    ``score(docs)`` is the logit σ⁻¹(c(x)) ``[N]``, an estimate of log p_HQ(x)/p_pool(x) (the
    classes are weighted to equal total mass)."""

    model: LogisticRegression
    ngram: int
    n_features: int

    def score(self, docs: np.ndarray) -> np.ndarray:
        return self.model.decision_function(hashed_ngrams(docs, ngram=self.ngram,
                                                          n_features=self.n_features))


def fit_quality_classifier(pool: np.ndarray, hq: np.ndarray, *, ngram: int = 2,
                           n_features: int = 2**12, C: float = 1.0,
                           seed: int = 0) -> QualityClassifier:
    """Fit CQF's classifier: HQ documents ``hq: [M, T]`` (label 1) against pool documents
    ``pool: [N, T]`` (label 0), balanced class weights, inverse L2 strength ``C``."""
    pool, hq = _docs("pool", pool), _docs("hq", hq)
    check_positive("C", C)
    x = hashed_ngrams(np.concatenate([pool, hq]), ngram=ngram, n_features=n_features)
    y = np.r_[np.zeros(len(pool)), np.ones(len(hq))]
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=1000, random_state=seed)
    model.fit(x, y)
    return QualityClassifier(model, ngram, n_features)


def select_top(scores: np.ndarray, k: int, method: str = "top") -> Selection:
    """The k documents of highest ``scores: [N]`` (ties broken by index)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("scores must be a finite [N] vector")
    k = _check_k(k, scores.size)
    index = np.argsort(-scores, kind="stable")[:k]
    return Selection(method, np.sort(index), scores)


def select_random(n: int, k: int, *, seed: int = 0) -> Selection:
    """k of the ``n`` pool documents, uniformly without replacement."""
    n = check_count("n", n)
    k = _check_k(k, n)
    return Selection("random", np.sort(np.random.default_rng(seed).choice(n, k, replace=False)))


def select_cqf(pool: np.ndarray, hq: np.ndarray, k: int, *, classifier: QualityClassifier | None
               = None, seed: int = 0, **fit) -> Selection:
    """CQF: the k pool documents of highest classifier score (fitted on ``pool`` vs ``hq``
    unless ``classifier`` is given)."""
    pool = _docs("pool", pool)
    k = _check_k(k, len(pool))
    if classifier is None:
        classifier = fit_quality_classifier(pool, hq, seed=seed, **fit)
    return select_top(classifier.score(pool), k, "cqf")


def select_oracle(log_ratio: np.ndarray, k: int, *, mode: str = "sample",
                  seed: int = 0) -> Selection:
    """The oracle density ratio log r = log p_HQ − log p_pool ``[N]``: its top k
    (``mode="top"``) or k draws without replacement ∝ r (``mode="sample"``, Gumbel top-k)."""
    check_choice("mode", mode, ("sample", "top"))
    log_ratio = np.asarray(log_ratio, dtype=float)
    if log_ratio.ndim != 1 or np.isnan(log_ratio).any() or np.isposinf(log_ratio).any():
        raise ValueError("log_ratio must be a [N] vector without NaN or +inf")
    k = _check_k(k, log_ratio.size)
    if mode == "top":
        return select_top(log_ratio, k, "oracle-top")
    if np.isfinite(log_ratio).sum() < k:
        raise ValueError(f"log_ratio has fewer than k={k} documents of positive ratio")
    gumbel = np.random.default_rng(seed).gumbel(size=log_ratio.size)
    keys = np.where(np.isfinite(log_ratio), log_ratio + gumbel, -np.inf)
    index = np.argsort(-keys, kind="stable")[:k]
    return Selection("oracle", np.sort(index), log_ratio)


def embed_documents(pool: np.ndarray, *others: np.ndarray, dim: int = 16, ngram: int = 2,
                    n_features: int = 2**12, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Embeddings ``[N, dim]`` (float32) of ``pool`` and of each of ``others``: hashed n-gram
    counts reduced by a truncated SVD fitted on the pool."""
    pool = _docs("pool", pool)
    dim = check_count("dim", dim)
    svd = TruncatedSVD(n_components=dim, random_state=seed)
    out = [svd.fit_transform(hashed_ngrams(pool, ngram=ngram, n_features=n_features))]
    for i, o in enumerate(others):
        out.append(svd.transform(hashed_ngrams(_docs(f"others[{i}]", o), ngram=ngram,
                                               n_features=n_features)))
    return tuple(x.astype(np.float32) for x in out)


def _emb(name: str, x: object) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a finite non-empty [N, d] array, got shape "
                         f"{array.shape}")
    return array


def _allocate(k: int, share: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Integer quotas q_c ≤ cap_c, Σ q_c = k, proportional to ``share`` (largest remainder),
    the overflow of full clusters handed to the others in proportion to their shares."""
    quota = np.zeros(share.size, dtype=int)
    free = cap > 0
    while quota.sum() < k:
        left = k - quota.sum()
        w = np.where(free, share, 0.0)
        if w.sum() <= 0:  # the HQ clusters are exhausted: fill from the rest uniformly
            w = np.where(free, 1.0, 0.0)
        raw = w / w.sum() * left
        add = np.floor(raw).astype(int)
        for c in np.argsort(-(raw - add), kind="stable")[: left - add.sum()]:
            add[c] += 1
        quota = np.minimum(quota + add, cap)
        free = quota < cap
    return quota


def select_crisp(pool_emb: np.ndarray, hq_emb: np.ndarray, k: int, *, n_clusters: int = 16,
                 seed: int = 0) -> Selection:
    """CRISP: k-means (``n_clusters``) on ``pool_emb: [N, d]``, HQ histogram of ``hq_emb:
    [M, d]`` over the clusters, per-cluster quotas k·h_c (capped by the cluster's size), uniform
    draws inside each cluster."""
    pool_emb, hq_emb = _emb("pool_emb", pool_emb), _emb("hq_emb", hq_emb)
    if pool_emb.shape[1] != hq_emb.shape[1]:
        raise ValueError(f"pool_emb and hq_emb must have the same dimension, got "
                         f"{pool_emb.shape[1]} and {hq_emb.shape[1]}")
    k = _check_k(k, len(pool_emb))
    n_clusters = check_count("n_clusters", n_clusters)
    if n_clusters > len(pool_emb):
        raise ValueError(f"n_clusters={n_clusters} exceeds the pool size {len(pool_emb)}")
    km = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit(pool_emb)
    labels = km.labels_
    hist = np.bincount(km.predict(hq_emb), minlength=n_clusters) / len(hq_emb)
    quota = _allocate(k, hist, np.bincount(labels, minlength=n_clusters))
    rng = np.random.default_rng(seed)
    index = np.concatenate([rng.choice(np.flatnonzero(labels == c), q, replace=False)
                            for c, q in enumerate(quota) if q > 0])
    return Selection("crisp", np.sort(index))


def received_mass(pool_emb: np.ndarray, hq_emb: np.ndarray, *, relative_epsilon: float = 0.05,
                  epsilon: float | None = None, tau_a: float = 0.5, max_iter: int = 2000,
                  tol: float = 1e-3) -> np.ndarray:
    """``[N]``: (P1)_i, the mass pool document i receives from the HQ set in the unbalanced
    entropic coupling (module docstring; uniform weights 1/N and 1/M, HQ side exact; ε is
    ``epsilon`` when given, else ``relative_epsilon`` × std of the cost; ρ_a = ε τ_a/(1 − τ_a))."""
    pool_emb, hq_emb = _emb("pool_emb", pool_emb), _emb("hq_emb", hq_emb)
    if pool_emb.shape[1] != hq_emb.shape[1]:
        raise ValueError(f"pool_emb and hq_emb must have the same dimension, got "
                         f"{pool_emb.shape[1]} and {hq_emb.shape[1]}")
    check_tau("tau_a", tau_a)
    x, y = torch.as_tensor(pool_emb), torch.as_tensor(hq_emb)
    scale = ({"epsilon": check_positive("epsilon", epsilon)} if epsilon is not None else
             {"relative_epsilon": check_positive("relative_epsilon", relative_epsilon)})
    result = sinkhorn(x, y, **scale, tau_a=tau_a, tau_b=1.0, max_iter=max_iter, tol=tol,
                      backend="torch")
    return result.marginals()[0].numpy()


def select_ot(pool_emb: np.ndarray, hq_emb: np.ndarray, k: int, *, relative_epsilon: float = 0.05,
              tau_a: float = 0.5, max_iter: int = 2000) -> Selection:
    """The OT selection: the k pool documents receiving the most HQ mass
    (:func:`received_mass`)."""
    k = _check_k(k, len(np.asarray(pool_emb)))
    mass = received_mass(pool_emb, hq_emb, relative_epsilon=relative_epsilon, tau_a=tau_a,
                         max_iter=max_iter)
    return select_top(mass, k, "ot")
