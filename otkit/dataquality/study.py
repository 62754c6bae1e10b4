"""The experiments of notebook 14: does classifier-based quality filtering (CQF) make better
language models, and why not on the high-quality set itself?

Nait Saada, Béthune, Klein, Grangier, Cuturi, Ablin (2025), "The Data-Quality Illusion:
Rethinking Classifier-Based Quality Filtering for LLM Pretraining" (arXiv:2510.00866). Their
claims, checked on a generated corpus (:mod:`~otkit.dataquality.corpus`) with small
transformers trained from scratch (:mod:`otkit.nn.transformer`, :mod:`otkit.nn.trainer`):

1. CQF improves downstream tasks (here: a cloze task drawn from the *benchmark* domain,
   ``"science"``, over-represented in HQ relative to the pool) over random selection,
2. but not the language-modelling loss on held-out HQ documents,
3. because CQF also filters the HQ distribution: thresholding the estimated ratio
   p_HQ/p_pool keeps the HQ documents least like the pool (those of the benchmark domain) and
   drops the rest (the *implicit filter*: the share of held-out HQ documents that score above
   the pool's keep threshold, per domain);
4. with synthetic quality (low quality = token-permuted documents, HQ = the same mix
   unpermuted) CQF behaves as a true quality filter: it lowers HQ loss and keeps HQ
   documents of every domain alike.

Arms (all at the same token budget k·T, :func:`otkit.dataquality.selection.budget_count`):
``random``, ``cqf``, ``oracle`` (importance resampling ∝ the exact ratio), ``oracle-top``
(the exact ratio thresholded: what CQF estimates), ``crisp``, ``ot`` (unbalanced Sinkhorn).
Losses are mean next-token cross-entropy in nats (positions 2..T). :func:`keep_fraction_grid`
trains one model per (method, keep fraction): the widget's grid. The analytic
:func:`mixture_loss` (the loss of the *best* model of a selection's domain mix: the mixture of
the true chains with the selection's shares, as if every domain had been learned perfectly)
sits beside it: it barely moves with the mix, so what a selection changes is how much data of
each domain the model sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..nn.trainer import TrainerConfig, train
from ..nn.transformer import Transformer, TransformerConfig
from ..stats import Interval, compare, mean_interval
from ..validation import check_choice, check_count, check_probability
from .corpus import Corpus, MarkovDomains, make_corpus, make_domains, mixture_log_prob
from .selection import (
    QualityClassifier,
    Selection,
    budget_count,
    embed_documents,
    fit_quality_classifier,
    received_mass,
    select_crisp,
    select_oracle,
    select_random,
    select_top,
)

__all__ = [
    "METHODS",
    "DQ_TRAINER",
    "StudySetup",
    "DomainArm",
    "ClozeTask",
    "ArmResult",
    "ImplicitFilter",
    "make_domain_arm",
    "make_permutation_arm",
    "make_cloze",
    "select",
    "train_lm",
    "lm_loss",
    "cloze_accuracy",
    "implicit_filter",
    "mixture_loss",
    "GRID_METHODS",
    "KeepFractionGrid",
    "keep_fraction_grid",
    "run_seed",
    "read_claims",
]

#: The selectors of the domain arm, in display order.
METHODS = ("random", "cqf", "oracle", "oracle-top", "crisp", "ot")
#: The trainer of notebook 14 (about a second per model on one core).
DQ_TRAINER = TrainerConfig(steps=150, batch_size=32, lr=3e-3, warmup=10, eval_every=150,
                           weight_decay=0.0)


@dataclass(frozen=True)
class StudySetup:
    """Sizes of the generated world.

    Attributes:
        vocab_size, length, branching, smoothing: the chains (:func:`make_domains`) and the
            document length T.
        pool_weights, junk: the pool's domain mix and junk share.
        hq_weights: the HQ mix (the benchmark domain is rare in the pool, common in HQ).
        benchmark: the domain the cloze task is drawn from.
        n_pool, n_hq, n_eval: pool size, HQ documents the selectors see, held-out documents
            (HQ and per domain) for the losses.
        keep_fraction: the budget, as a share of the pool's tokens.
        permuted, perm_keep: the permutation arm's share of permuted pool documents and its
            keep fraction (its pool is n_pool · keep_fraction / perm_keep documents, so that
            both arms train on the same token budget).
        d_model, n_layers: the lab transformer (heads 2, d_mlp 4·d_model).
    """

    vocab_size: int = 48
    length: int = 24
    branching: int = 4
    smoothing: float = 0.05
    pool_weights: Mapping[str, float] = field(default_factory=lambda: {
        "science": 0.08, "news": 0.25, "forum": 0.25, "ads": 0.17})
    junk: float = 0.25
    hq_weights: Mapping[str, float] = field(default_factory=lambda: {
        "science": 1 / 3, "news": 1 / 3, "forum": 1 / 3})
    benchmark: str = "science"
    n_pool: int = 4000
    n_hq: int = 600
    n_eval: int = 300
    keep_fraction: float = 0.1
    permuted: float = 0.5
    perm_keep: float = 0.4
    d_model: int = 32
    n_layers: int = 1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "length", "n_pool", "n_hq", "n_eval", "d_model", "n_layers"):
            check_count(name, getattr(self, name))
        for name in ("keep_fraction", "permuted", "perm_keep"):
            check_probability(name, getattr(self, name))
        if self.benchmark not in self.hq_weights:
            raise ValueError(f"benchmark={self.benchmark!r} must be an HQ domain "
                             f"({sorted(self.hq_weights)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.pool_weights, *self.hq_weights]))

    @property
    def budget_tokens(self) -> int:
        return int(round(self.keep_fraction * self.n_pool)) * self.length


@dataclass(frozen=True, eq=False)
class ClozeTask:
    """Multiple-choice continuations: ``prompts: [n, P]``, ``choices: [n, c, L]`` (choice 0
    the true continuation, the others drawn from the other domains' chains from the same last
    prompt token)."""

    prompts: np.ndarray
    choices: np.ndarray


@dataclass(frozen=True, eq=False)
class DomainArm:
    """One generated world and everything the selectors and the evaluation need.

    Attributes:
        domains, setup: the chains and sizes.
        pool: the pool corpus; hq: the HQ documents the selectors see; hq_eval: held-out HQ.
        domain_eval: ``{name: [n_eval, T]}`` held-out documents of each domain.
        cloze: the benchmark task.
        log_ratio: ``[N]`` exact log p_HQ/p_pool of the pool documents (None in the
            permutation arm, whose permuted documents have no closed-form density).
        classifier: CQF's fitted classifier; scores: ``[N]`` its pool scores.
        pool_emb, hq_emb: embeddings for CRISP and OT.
        k: documents per selection.
    """

    domains: MarkovDomains
    setup: StudySetup
    pool: Corpus
    hq: Corpus
    hq_eval: Corpus
    domain_eval: dict[str, np.ndarray]
    cloze: ClozeTask | None
    log_ratio: np.ndarray | None
    classifier: QualityClassifier
    scores: np.ndarray
    pool_emb: np.ndarray
    hq_emb: np.ndarray
    k: int


def make_cloze(domains: MarkovDomains, domain: str, n: int, *, prompt: int = 12,
               answer: int = 4, n_choices: int = 4, seed: int = 0) -> ClozeTask:
    """``n`` cloze items from ``domain``: a ``prompt``-token prefix, the true ``answer``-token
    continuation and ``n_choices − 1`` distractor continuations of other domains."""
    check_count("n", n)
    check_count("n_choices", n_choices, minimum=2)
    if domains.n_domains < 2:
        raise ValueError("a cloze task needs at least two domains")
    rng = np.random.default_rng(seed)
    d = domains.index(domain)
    full = domains.sample(d, n, prompt + answer, rng)
    others = [o for o in range(domains.n_domains) if o != d]
    choices = np.empty((n, n_choices, answer), dtype=np.int64)
    choices[:, 0] = full[:, prompt:]
    last = full[:, prompt - 1]
    for c in range(1, n_choices):
        pick = rng.choice(others, size=n)
        for o in others:
            rows = np.flatnonzero(pick == o)
            if rows.size:
                choices[rows, c] = domains.sample(o, rows.size, answer + 1, rng,
                                                  start=last[rows])[:, 1:]
    return ClozeTask(full[:, :prompt], choices)


def _hq_names(setup: StudySetup) -> dict[str, float]:
    return {k: float(v) for k, v in setup.hq_weights.items()}


def _finish(domains, setup, pool, hq, hq_eval, cloze, log_ratio, k, seed) -> DomainArm:
    domain_eval = {name: domains.sample(domains.index(name), setup.n_eval, setup.length,
                                        np.random.default_rng(seed + 100 + i))
                   for i, name in enumerate(domains.names)}
    classifier = fit_quality_classifier(pool.docs, hq.docs, seed=seed)
    pool_emb, hq_emb = embed_documents(pool.docs, hq.docs, seed=seed)
    return DomainArm(domains, setup, pool, hq, hq_eval, domain_eval, cloze, log_ratio,
                     classifier, classifier.score(pool.docs), pool_emb, hq_emb, k)


def make_domain_arm(setup: StudySetup | None = None, *, seed: int = 0) -> DomainArm:
    """The domain arm's world: chains (seed), pool with junk, HQ mixture, held-out sets, the
    benchmark cloze task, the exact log-ratio, CQF's classifier and the embeddings."""
    setup = StudySetup() if setup is None else setup
    domains = make_domains(setup.names, vocab_size=setup.vocab_size, branching=setup.branching,
                           smoothing=setup.smoothing, seed=seed)
    hq_w = _hq_names(setup)
    pool = make_corpus(domains, setup.pool_weights, setup.n_pool, setup.length,
                       junk=setup.junk, seed=seed + 1)
    hq = make_corpus(domains, hq_w, setup.n_hq, setup.length, seed=seed + 2)
    hq_eval = make_corpus(domains, hq_w, setup.n_eval, setup.length, seed=seed + 3)
    log_ratio = (mixture_log_prob(domains, pool.docs, hq_w)
                 - mixture_log_prob(domains, pool.docs, setup.pool_weights, junk=setup.junk))
    prompt = setup.length // 2
    cloze = make_cloze(domains, setup.benchmark, setup.n_eval, prompt=prompt,
                       answer=min(4, setup.length - prompt), seed=seed + 4)
    k = budget_count(setup.budget_tokens, setup.length, len(pool))
    return _finish(domains, setup, pool, hq, hq_eval, cloze, log_ratio, k, seed)


def make_permutation_arm(setup: StudySetup | None = None, *, seed: int = 0) -> DomainArm:
    """The permutation arm: the pool is the HQ mix with a share ``setup.permuted`` of its
    documents token-permuted (no junk); HQ is the same mix unpermuted; same token budget as
    the domain arm."""
    setup = StudySetup() if setup is None else setup
    domains = make_domains(setup.names, vocab_size=setup.vocab_size, branching=setup.branching,
                           smoothing=setup.smoothing, seed=seed)
    hq_w = _hq_names(setup)
    k = budget_count(setup.budget_tokens, setup.length, setup.n_pool)
    n_pool = max(k, int(round(k / setup.perm_keep)))
    pool = make_corpus(domains, hq_w, n_pool, setup.length, permuted=setup.permuted,
                       seed=seed + 1)
    hq = make_corpus(domains, hq_w, setup.n_hq, setup.length, seed=seed + 2)
    hq_eval = make_corpus(domains, hq_w, setup.n_eval, setup.length, seed=seed + 3)
    return _finish(domains, setup, pool, hq, hq_eval, None, None, k, seed)


def select(arm: DomainArm, method: str, *, seed: int = 0) -> Selection:
    """``arm``'s selection of ``arm.k`` pool documents by ``method`` (one of :data:`METHODS`;
    the oracles need the domain arm)."""
    check_choice("method", method, METHODS)
    if method == "random":
        return select_random(len(arm.pool), arm.k, seed=seed)
    if method == "cqf":
        return select_top(arm.scores, arm.k, "cqf")
    if method in ("oracle", "oracle-top"):
        if arm.log_ratio is None:
            raise ValueError(f"method={method!r} needs the exact density ratio (domain arm)")
        return select_oracle(arm.log_ratio, arm.k, mode="top" if method == "oracle-top"
                             else "sample", seed=seed)
    if method == "crisp":
        return select_crisp(arm.pool_emb, arm.hq_emb, arm.k, seed=seed)
    return select_top(received_mass(arm.pool_emb, arm.hq_emb), arm.k, "ot")


def _lm_data(docs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.as_tensor(np.asarray(docs), dtype=torch.long)
    return d[:, :-1].contiguous(), d[:, 1:].contiguous()


def train_lm(docs: np.ndarray, setup: StudySetup, *, trainer: TrainerConfig | None = None,
             seed: int = 0) -> Transformer:
    """A lab transformer trained on ``docs: [k, T]`` (next-token loss) for ``trainer`` steps."""
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(vocab_size=setup.vocab_size, d_model=setup.d_model,
                                          n_layers=setup.n_layers, n_heads=2,
                                          d_mlp=4 * setup.d_model, max_len=setup.length - 1))
    inputs, targets = _lm_data(docs)
    train(model, inputs, targets, config=DQ_TRAINER if trainer is None else trainer, seed=seed,
          progress=False)
    return model


@torch.no_grad()
def lm_loss(model: Transformer, docs: np.ndarray) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on ``docs: [N, T]`` (positions 2..T)."""
    model.eval()
    inputs, targets = _lm_data(docs)
    logits = model(inputs)
    return float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)))


@torch.no_grad()
def cloze_accuracy(model: Transformer, task: ClozeTask) -> float:
    """Share of items whose true continuation has the highest log-likelihood under ``model``."""
    model.eval()
    n, c, a = task.choices.shape
    prompts = np.repeat(task.prompts[:, None], c, axis=1)  # [n, c, P]
    seq = torch.as_tensor(np.concatenate([prompts, task.choices], -1).reshape(n * c, -1))
    logp = model(seq[:, :-1]).log_softmax(-1)
    tok = logp.gather(-1, seq[:, 1:, None])[..., 0][:, -a:].sum(-1).reshape(n, c)
    return float((tok.argmax(1) == 0).double().mean())


@dataclass(frozen=True)
class ImplicitFilter:
    """Which held-out HQ documents CQF would keep: those scoring at least the pool's keep
    threshold (the k-th largest pool score).

    Attributes:
        kept: share of all held-out HQ documents kept.
        per_domain: ``{domain: share kept}``.
        distortion: total-variation distance between the HQ domain mix and the kept HQ
            documents' mix (0 = CQF keeps HQ documents of every domain alike).
    """

    kept: float
    per_domain: dict[str, float]
    distortion: float


def implicit_filter(arm: DomainArm) -> ImplicitFilter:
    """CQF's implicit filter on ``arm.hq_eval`` (:class:`ImplicitFilter`)."""
    threshold = np.sort(arm.scores)[-arm.k]
    keep = arm.classifier.score(arm.hq_eval.docs) >= threshold
    dom = arm.hq_eval.domain
    present = [d for d in range(arm.domains.n_domains) if (dom == d).any()]
    per = {arm.domains.names[d]: float(keep[dom == d].mean()) for d in present}
    mix = np.array([(dom == d).mean() for d in present])
    kept_mix = (np.array([(keep & (dom == d)).sum() for d in present]) / keep.sum()
                if keep.any() else np.zeros(len(present)))
    return ImplicitFilter(float(keep.mean()), per, float(0.5 * np.abs(mix - kept_mix).sum()))


def mixture_loss(domains: MarkovDomains, docs: np.ndarray, composition: Mapping[str, float]
                 ) -> float:
    """Per-token cross-entropy (nats, all T tokens) on ``docs`` of the best model of a
    selection's mix: Σ_k s_k p_k + s_junk·uniform, s the ``composition`` (:meth:`Corpus.
    composition`, permuted documents counted as junk)."""
    weights = {name: composition.get(name, 0.0) for name in domains.names}
    junk = composition.get("junk", 0.0) + composition.get("permuted", 0.0)
    docs = np.asarray(docs)
    return float(-mixture_log_prob(domains, docs, weights, junk=junk).mean() / docs.shape[1])


#: The selectors :func:`keep_fraction_grid` accepts (CRISP's clustering is per budget).
GRID_METHODS = ("random", "cqf", "oracle", "oracle-top", "ot")


@dataclass(frozen=True, eq=False)
class KeepFractionGrid:
    """Selections and models over keep fractions: the widget's precomputed grid.

    Attributes:
        methods: M selector names; fractions: F keep fractions; k: ``[F]`` documents kept.
        components: the C composition columns (the domains, then ``"junk"``).
        composition: ``[M, F, C]`` shares of each selection.
        hq_loss, benchmark_loss, cloze: ``[M, F]`` of the model trained on each selection
            (NaN when the grid was built with ``train=False``).
        mixture_hq_loss: ``[M, F]`` the analytic :func:`mixture_loss` on held-out HQ.
        tokens: ``[F]`` tokens kept (k · T).
    """

    methods: tuple[str, ...]
    fractions: tuple[float, ...]
    k: np.ndarray
    components: tuple[str, ...]
    composition: np.ndarray
    hq_loss: np.ndarray
    benchmark_loss: np.ndarray
    cloze: np.ndarray
    mixture_hq_loss: np.ndarray
    tokens: np.ndarray

    def at(self, method: str, fraction: float) -> dict[str, object]:
        """One cell: ``{"composition": {component: share}, "hq_loss", "benchmark_loss",
        "cloze", "mixture_hq_loss", "k"}``."""
        check_choice("method", method, self.methods)
        check_choice("fraction", fraction, self.fractions)
        m, f = self.methods.index(method), self.fractions.index(fraction)
        return {"composition": dict(zip(self.components, self.composition[m, f].tolist())),
                "hq_loss": float(self.hq_loss[m, f]),
                "benchmark_loss": float(self.benchmark_loss[m, f]),
                "cloze": float(self.cloze[m, f]),
                "mixture_hq_loss": float(self.mixture_hq_loss[m, f]), "k": int(self.k[f])}


def keep_fraction_grid(arm: DomainArm, fractions: Sequence[float],
                       methods: Sequence[str] = ("random", "cqf", "oracle"), *,
                       trainer: TrainerConfig | None = None, train: bool = True,
                       seed: int = 0) -> KeepFractionGrid:
    """For each method (:data:`GRID_METHODS`) and keep fraction f (k = round(f·N) documents):
    the selection's composition, the analytic :func:`mixture_loss` on held-out HQ and, with
    ``train``, the HQ loss, benchmark-domain loss and cloze accuracy of a lab model trained on
    it (:func:`train_lm`; same steps for every cell, so small selections are seen for more
    epochs)."""
    fractions = tuple(check_probability("fractions", float(f)) for f in fractions)
    if not fractions:
        raise ValueError("fractions is empty")
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods is empty")
    for m in methods:
        check_choice("methods", m, GRID_METHODS)
    n = len(arm.pool)
    mass = received_mass(arm.pool_emb, arm.hq_emb) if "ot" in methods else None
    components = (*arm.domains.names, "junk")
    shape = (len(methods), len(fractions))
    comp = np.zeros((*shape, len(components)))
    hq, bench, cloze, mix = (np.full(shape, np.nan) for _ in range(4))
    ks = np.array([max(1, int(round(f * n))) for f in fractions])
    bench_docs = arm.domain_eval[arm.setup.benchmark]
    for i, m in enumerate(methods):
        for j, k in enumerate(ks):
            if m == "random":
                sel = select_random(n, int(k), seed=seed)
            elif m == "cqf":
                sel = select_top(arm.scores, int(k))
            elif m == "ot":
                sel = select_top(mass, int(k))
            else:
                if arm.log_ratio is None:
                    raise ValueError(f"methods has {m!r}, which needs the domain arm")
                sel = select_oracle(arm.log_ratio, int(k), mode="top" if m == "oracle-top"
                                    else "sample", seed=seed)
            shares = arm.pool.subset(sel.index).composition(arm.domains.names)
            shares["junk"] += shares.pop("permuted")
            comp[i, j] = [shares[c] for c in components]
            mix[i, j] = mixture_loss(arm.domains, arm.hq_eval.docs, shares)
            if train:
                model = train_lm(arm.pool.docs[sel.index], arm.setup, trainer=trainer, seed=seed)
                hq[i, j] = lm_loss(model, arm.hq_eval.docs)
                bench[i, j] = lm_loss(model, bench_docs)
                if arm.cloze is not None:
                    cloze[i, j] = cloze_accuracy(model, arm.cloze)
    return KeepFractionGrid(methods, fractions, ks, components, comp, hq, bench, cloze, mix,
                            ks * arm.setup.length)


@dataclass(frozen=True)
class ArmResult:
    """One trained model: ``arm`` ("domain" or "permutation"), ``method``, ``seed``; losses
    (nats) on held-out HQ and per domain, cloze accuracy (NaN in the permutation arm), the
    selection's composition and tokens."""

    arm: str
    method: str
    seed: int
    hq_loss: float
    domain_loss: dict[str, float]
    cloze: float
    composition: dict[str, float]
    tokens: int


def _evaluate(arm_name: str, arm: DomainArm, method: str, seed: int,
              trainer: TrainerConfig | None) -> ArmResult:
    sel = select(arm, method, seed=seed)
    docs = arm.pool.docs[sel.index]
    model = train_lm(docs, arm.setup, trainer=trainer, seed=seed)
    return ArmResult(
        arm_name, method, seed, lm_loss(model, arm.hq_eval.docs),
        {name: lm_loss(model, d) for name, d in arm.domain_eval.items()},
        cloze_accuracy(model, arm.cloze) if arm.cloze is not None else math.nan,
        arm.pool.subset(sel.index).composition(arm.domains.names), sel.tokens(arm.setup.length))


def run_seed(setup: StudySetup | None = None, *, seed: int = 0, methods: Sequence[str] = METHODS,
             trainer: TrainerConfig | None = None
             ) -> tuple[list[ArmResult], ImplicitFilter, ImplicitFilter]:
    """Both arms for one seed (a new world, new selections, new models): the domain arm's
    ``methods`` and the permutation arm's random and CQF. Returns ``(results, implicit filter
    of the domain arm, implicit filter of the permutation arm)``."""
    setup = StudySetup() if setup is None else setup
    arm = make_domain_arm(setup, seed=seed)
    results = [_evaluate("domain", arm, m, seed, trainer) for m in methods]
    perm = make_permutation_arm(setup, seed=seed)
    results += [_evaluate("permutation", perm, m, seed, trainer) for m in ("random", "cqf")]
    return results, implicit_filter(arm), implicit_filter(perm)


def _interval(values: Sequence[float]) -> Interval:
    values = [float(v) for v in values]
    if len(values) < 2:
        v = values[0] if values else math.nan
        return Interval(v, v, v, len(values), 0.95)
    return mean_interval(values)


def _paired(results: Sequence[ArmResult], arm: str, a: str, b: str, key: str):
    rows = {(r.method, r.seed): getattr(r, key) for r in results if r.arm == arm}
    seeds = sorted({s for m, s in rows if m == a} & {s for m, s in rows if m == b})
    x, y = [rows[a, s] for s in seeds], [rows[b, s] for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"need at least two seeds with both {a!r} and {b!r}")
    return compare(x, y)


def read_claims(results: Sequence[ArmResult], filters: Sequence[ImplicitFilter],
                perm_filters: Sequence[ImplicitFilter]) -> dict[str, object]:
    """The paper's claims read over seeds (paired comparisons, :func:`otkit.stats.compare`):

    * ``cqf_vs_random_cloze``: CQF vs random on cloze accuracy ("higher" reproduces claim 1);
    * ``cqf_vs_random_hq_loss``: CQF vs random on HQ loss (claim 2 holds unless "lower");
    * ``oracle_vs_cqf_hq_loss``: importance resampling vs CQF on HQ loss;
    * ``perm_cqf_vs_random_hq_loss``: CQF vs random on HQ loss in the permutation arm
      ("lower": a true quality filter);
    * ``<method>_hq_loss``, ``<method>_cloze``, ``<method>_loss_<domain>``,
      ``perm_<method>_hq_loss``: intervals over seeds;
    * the implicit filters' kept shares and distortions with intervals over seeds;
    * ``claim_*``: ``claim_downstream`` (CQF higher on cloze), ``claim_no_hq_gain`` (CQF not
      lower on HQ loss), ``claim_filters_hq`` (CQF keeps under 90% of HQ, distortion above
      0.1), ``claim_permutation_differs`` (in the permutation arm CQF lowers HQ loss, keeps
      more of HQ and distorts its mix less than in the domain arm, intervals apart).
    """
    if not results:
        raise ValueError("results is empty")
    methods = [r.method for r in results if r.arm == "domain"]
    out: dict[str, object] = {}
    for m in dict.fromkeys(methods):
        rows = [r for r in results if r.arm == "domain" and r.method == m]
        out[f"{m}_hq_loss"] = _interval([r.hq_loss for r in rows])
        out[f"{m}_cloze"] = _interval([r.cloze for r in rows])
        for name in rows[0].domain_loss:
            out[f"{m}_loss_{name}"] = _interval([r.domain_loss[name] for r in rows])
    for m in ("random", "cqf"):
        rows = [r for r in results if r.arm == "permutation" and r.method == m]
        out[f"perm_{m}_hq_loss"] = _interval([r.hq_loss for r in rows])
    out["cqf_vs_random_cloze"] = _paired(results, "domain", "cqf", "random", "cloze")
    out["cqf_vs_random_hq_loss"] = _paired(results, "domain", "cqf", "random", "hq_loss")
    if "oracle" in methods:
        out["oracle_vs_cqf_hq_loss"] = _paired(results, "domain", "oracle", "cqf", "hq_loss")
    out["perm_cqf_vs_random_hq_loss"] = _paired(results, "permutation", "cqf", "random", "hq_loss")
    out["hq_kept"] = _interval([f.kept for f in filters])
    out["hq_distortion"] = _interval([f.distortion for f in filters])
    out["perm_hq_kept"] = _interval([f.kept for f in perm_filters])
    out["perm_hq_distortion"] = _interval([f.distortion for f in perm_filters])
    out["claim_downstream"] = out["cqf_vs_random_cloze"].verdict == "higher"
    out["claim_no_hq_gain"] = out["cqf_vs_random_hq_loss"].verdict != "lower"
    out["claim_filters_hq"] = out["hq_kept"].high < 0.9 and out["hq_distortion"].low > 0.1
    out["claim_permutation_differs"] = (out["perm_cqf_vs_random_hq_loss"].verdict == "lower"
                                        and out["perm_hq_distortion"].high
                                        < out["hq_distortion"].low
                                        and out["perm_hq_kept"].low > out["hq_kept"].high)
    return out

