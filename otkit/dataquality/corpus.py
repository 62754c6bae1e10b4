"""A generated pretraining corpus: domains as Markov chains over one vocabulary, a noisy pool, an
HQ mixture, and the exact densities that make the oracle density ratio computable.

Nait Saada, Béthune, Klein, Grangier, Cuturi, Ablin (2025), "The Data-Quality Illusion:
Rethinking Classifier-Based Quality Filtering for LLM Pretraining" (arXiv:2510.00866) model a
pretraining pool and a small high-quality (HQ) set as two distributions p_pool and p_HQ over
documents. Here both are mixtures of K first-order Markov chains (the *domains*) sharing a
vocabulary of V tokens, plus junk (uniform random tokens) in the pool:

    p_k(x) = π_k(x_1) ∏_{t=2}^{T} A_k(x_{t−1}, x_t)                 (domain k, x ∈ [V]^T)
    p_pool(x) = Σ_k w_k p_k(x) + w_junk V^{−T},   p_HQ(x) = Σ_k h_k p_k(x)

so that the density ratio r(x) = p_HQ(x) / p_pool(x), which a quality classifier estimates
(:mod:`otkit.dataquality.selection`), is known exactly (:func:`mixture_log_prob`).
The permutation arm's "low quality" documents are domain documents with their tokens shuffled
(the paper's synthetic quality): a permuted document keeps its unigram counts and loses its
order.

Shapes: documents ``docs: [N, T]`` int64 token ids, all of the same length T (so a token budget
is a document count); ``domain: [N]`` with −1 for junk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..validation import check_count, check_probability

__all__ = ["JUNK", "MarkovDomains", "Corpus", "make_domains", "make_corpus", "mixture_log_prob"]

#: The domain id of junk documents (uniform random tokens).
JUNK = -1


def _check_docs(name: str, docs: object, vocab_size: int) -> np.ndarray:
    array = np.asarray(docs)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [N, T] array of token ids, got shape "
                         f"{array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= vocab_size:
        raise ValueError(f"{name} must hold ids in [0, {vocab_size}), got values in "
                         f"[{array.min()}, {array.max()}]")
    return array.astype(np.int64, copy=False)


@dataclass(frozen=True, eq=False)
class MarkovDomains:
    """K first-order Markov chains over one vocabulary of V tokens.

    Attributes:
        names: the K domain names.
        initial: ``[K, V]`` initial distributions π_k.
        transition: ``[K, V, V]`` row-stochastic matrices A_k (row: current token).
    """

    names: tuple[str, ...]
    initial: np.ndarray
    transition: np.ndarray

    def __post_init__(self) -> None:
        k, v = self.initial.shape
        if self.transition.shape != (k, v, v) or len(self.names) != k:
            raise ValueError(f"transition must be [K, V, V] = [{k}, {v}, {v}] and names K long, "
                             f"got {self.transition.shape} and {len(self.names)} names")
        for what, p in (("initial", self.initial), ("transition", self.transition)):
            if (p < 0).any() or not np.allclose(p.sum(-1), 1.0):
                raise ValueError(f"{what} rows must be probability vectors")

    @property
    def vocab_size(self) -> int:
        return self.initial.shape[1]

    @property
    def n_domains(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The id of domain ``name``."""
        if name not in self.names:
            raise ValueError(f"unknown domain {name!r}; domains are {self.names}")
        return self.names.index(name)

    def sample(self, domain: int, n: int, length: int, rng: np.random.Generator,
               start: np.ndarray | None = None) -> np.ndarray:
        """``[n, length]`` documents of chain ``domain`` (the first token from π_k, or the
        given ``start: [n]`` tokens, then ``length − 1`` transitions)."""
        a = self.transition[domain]
        cum = np.cumsum(a, axis=1)
        cum[:, -1] = 1.0
        docs = np.empty((n, length), dtype=np.int64)
        if start is None:
            docs[:, 0] = rng.choice(self.vocab_size, size=n, p=self.initial[domain])
        else:
            docs[:, 0] = start
        for t in range(1, length):
            u = rng.random(n)
            docs[:, t] = (u[:, None] > cum[docs[:, t - 1]]).sum(1)
        return docs

    def log_prob(self, docs: np.ndarray, *, first: bool = True) -> np.ndarray:
        """``[N, K]``: log p_k(x) of each document under each chain (with the initial term
        log π_k(x_1) when ``first``; without it, the log-probability of x_2..x_T given x_1)."""
        docs = _check_docs("docs", docs, self.vocab_size)
        out = self.transition[:, docs[:, :-1], docs[:, 1:]]  # [K, N, T-1]
        with np.errstate(divide="ignore"):
            logp = np.log(out).sum(-1)
            if first:
                logp = logp + np.log(self.initial[:, docs[:, 0]])
        return logp.T


def make_domains(names: tuple[str, ...] = ("science", "news", "forum", "ads"), *,
                 vocab_size: int = 48, branching: int = 4, smoothing: float = 0.05,
                 seed: int = 0) -> MarkovDomains:
    """Random chains: each token of each domain moves to ``branching`` next tokens (chosen at
    random, Dirichlet(1) weights) with total probability 1 − ``smoothing``, and to any token
    with probability ``smoothing``/V; initial distributions uniform. Domains share the
    vocabulary and differ in their transitions (their unigram frequencies are close)."""
    check_count("vocab_size", vocab_size, minimum=2)
    check_count("branching", branching)
    if branching > vocab_size:
        raise ValueError(f"branching={branching} must be <= vocab_size={vocab_size}")
    check_probability("smoothing", smoothing, closed=True)
    if len(names) == 0 or len(set(names)) != len(names):
        raise ValueError(f"names must be distinct and non-empty, got {names}")
    rng = np.random.default_rng(seed)
    k, v = len(names), vocab_size
    transition = np.full((k, v, v), smoothing / v)
    for d in range(k):
        for s in range(v):
            nxt = rng.choice(v, size=branching, replace=False)
            transition[d, s, nxt] += (1 - smoothing) * rng.dirichlet(np.ones(branching))
    initial = np.full((k, v), 1.0 / v)
    return MarkovDomains(tuple(names), initial, transition)


@dataclass(frozen=True, eq=False)
class Corpus:
    """Documents and where they came from.

    Attributes:
        docs: ``[N, T]`` int64 token ids.
        domain: ``[N]`` domain id of each document (:data:`JUNK` = −1 for junk).
        permuted: ``[N]`` bool, the document's tokens were shuffled (permutation arm).
    """

    docs: np.ndarray
    domain: np.ndarray
    permuted: np.ndarray

    def __len__(self) -> int:
        return self.docs.shape[0]

    @property
    def length(self) -> int:
        return self.docs.shape[1]

    @property
    def tokens(self) -> int:
        return int(self.docs.size)

    def subset(self, index: np.ndarray) -> Corpus:
        index = np.asarray(index, dtype=np.int64)
        return Corpus(self.docs[index], self.domain[index], self.permuted[index])

    def composition(self, names: tuple[str, ...]) -> dict[str, float]:
        """``{domain name: share of documents}``, with ``"junk"`` and ``"permuted"`` (the
        permuted documents, counted there rather than in their domain)."""
        n = len(self)
        out = {name: float(((self.domain == k) & ~self.permuted).sum() / n)
               for k, name in enumerate(names)}
        out["junk"] = float((self.domain == JUNK).sum() / n)
        out["permuted"] = float(self.permuted.sum() / n)
        return out


def _counts(weights: Mapping[str, float], junk: float, n: int, domains: MarkovDomains
            ) -> dict[int, int]:
    for name in weights:
        domains.index(name)
    w = np.array([float(weights.get(name, 0.0)) for name in domains.names] + [float(junk)])
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights (and junk) must be finite, >= 0 and not all 0, got "
                         f"{dict(weights)} and junk={junk}")
    w = w / w.sum()
    raw = w * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: n - counts.sum()]:  # largest remainders
        counts[i] += 1
    return {k: int(c) for k, c in zip([*range(domains.n_domains), JUNK], counts)}


def make_corpus(domains: MarkovDomains, weights: Mapping[str, float], n: int, length: int, *,
                junk: float = 0.0, permuted: float = 0.0, seed: int = 0) -> Corpus:
    """``n`` documents of ``length`` tokens: domain k's share is ``weights[k]`` and junk's
    ``junk`` (normalized together; exact counts by largest remainder), shuffled. A share
    ``permuted`` of the domain documents (chosen at random) has its tokens permuted."""
    check_count("n", n)
    check_count("length", length, minimum=2)
    check_probability("permuted", permuted, closed=True)
    if not isinstance(junk, (int, float)) or junk < 0:
        raise ValueError(f"junk must be a share >= 0, got {junk!r}")
    rng = np.random.default_rng(seed)
    parts, labels = [], []
    for k, c in _counts(weights, junk, n, domains).items():
        if c == 0:
            continue
        if k == JUNK:
            parts.append(rng.integers(domains.vocab_size, size=(c, length)))
        else:
            parts.append(domains.sample(k, c, length, rng))
        labels.append(np.full(c, k))
    docs, domain = np.concatenate(parts).astype(np.int64), np.concatenate(labels)
    order = rng.permutation(n)
    docs, domain = docs[order], domain[order]
    shuffled = np.zeros(n, dtype=bool)
    real = np.flatnonzero(domain != JUNK)
    pick = rng.choice(real, size=int(round(permuted * real.size)), replace=False)
    for i in pick:
        docs[i] = docs[i, rng.permutation(length)]
    shuffled[pick] = True
    return Corpus(docs, domain, shuffled)


def mixture_log_prob(domains: MarkovDomains, docs: np.ndarray, weights: Mapping[str, float], *,
                     junk: float = 0.0) -> np.ndarray:
    """``[N]``: log p(x) for the mixture Σ_k w_k p_k(x) + w_junk V^{−T} (weights normalized
    with ``junk``), by log-sum-exp over the chains' exact log-probabilities."""
    docs = _check_docs("docs", docs, domains.vocab_size)
    w = np.array([float(weights.get(name, 0.0)) for name in domains.names] + [float(junk)])
    for name in weights:
        domains.index(name)
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be >= 0 and not all 0, got {dict(weights)}")
    w = w / w.sum()
    logp = domains.log_prob(docs)  # [N, K]
    junk_logp = np.full((docs.shape[0], 1), -docs.shape[1] * np.log(domains.vocab_size))
    terms = np.concatenate([logp, junk_logp], axis=1)
    with np.errstate(divide="ignore"):
        return logsumexp(terms + np.log(w)[None, :], axis=1)
