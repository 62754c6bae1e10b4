"""The experiments of notebook 15: Nectar against equal-memory caches on the lookup task.

Monteiro, Klein, Ablin, Cuturi (2026), "Nectar: neural estimation of cached-token attention via
regression". A 2-layer transformer (:func:`otkit.nectar.lookup.train_lookup`) reads a context of
n tokens (R ``key:value;`` records among fillers) and answers questions about it. For each
context, every layer's cache (keys, values: ``[1, H, n, d]``, :func:`~otkit.nectar.attention.context_cache`)
is replaced by a summary read through eq. merge (:func:`~otkit.nectar.attention.forward_live`):

* ``"nectar"``: :func:`~otkit.nectar.regression.fit_nectar`'s networks fitted on the queries of
  ``n_train`` question prompts about the context (exact targets log Z, o);
* the baselines of :mod:`otkit.nectar.compress` at the same memory per head, m = the networks'
  parameter count / (2 d_head), rounded: ``"truncation"``, ``"subsample"``, ``"kmeans"``.

On ``n_test`` other prompts it measures, per layer (on the exact model's queries): the RMSE of
log Z, the relative error of o, and the relative error of the merged attention output (what
the next layer reads); and with every layer summarized at once: the answers' accuracy and
next-token loss, as gaps to the full cache's. The paper's claims, read by :func:`read_claims`:

1. the error tracks the accuracy gap: Spearman's ρ over settings (method × memory × n) between
   the mean merged-attention error and the accuracy gap (and the loss gap) is positive;
2. error-proportional capacity helps: at an equal total width, layer widths w_l ∝ e_l (the
   per-layer errors of a uniform fit; :func:`allocate`) give a smaller loss gap than uniform
   widths (paired over contexts, :func:`otkit.stats.compare`);
3. latency is flat in n: a decoding step's attention through Nectar costs the same at every n,
   the full cache's grows (:func:`latency`, measured on this machine's CPU).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats as scipy_stats

from ..nn.transformer import Transformer
from ..stats import compare
from ..validation import check_count
from .attention import (
    LayerCache,
    WeightedCache,
    cache_targets,
    context_cache,
    forward_live,
    merge_attention,
)
from .compress import BASELINES, compress
from .lookup import LookupSpec, make_lookup
from .regression import Nectar, fit_icnn_log_z, fit_nectar, nectar_tokens

__all__ = ["METHODS", "ContextSetup", "question_prompts", "prepare_context", "evaluate",
           "allocate", "nectar_study", "NectarStudy", "latency", "read_claims", "icnn_study",
           "mean_rows"]

#: Nectar and its baselines.
METHODS = ("nectar",) + BASELINES


def question_prompts(spec: LookupSpec, context: torch.Tensor, count: int, *, seed: int = 0
                     ) -> torch.Tensor:
    """``[count, 2Q]`` question prompts ``?k v ?k' v' …`` about the records of ``context: [n]``
    (keys drawn uniformly among the context's records)."""
    if context.ndim != 1:
        raise ValueError(f"context must be [n] token ids, got shape {tuple(context.shape)}")
    count = check_count("count", count)
    rec = context[(context >= spec.record0) & (context < spec.question0)] - spec.record0
    if rec.numel() == 0:
        raise ValueError("context holds no record")
    keys, values = rec // spec.n_values, rec % spec.n_values
    g = torch.Generator().manual_seed(int(seed))
    pick = torch.randint(0, rec.numel(), (count, spec.n_questions), generator=g)
    out = torch.empty(count, 2 * spec.n_questions, dtype=torch.long)
    out[:, 0::2] = spec.question0 + keys[pick]
    out[:, 1::2] = spec.value0 + values[pick]
    return out


@dataclass(frozen=True, eq=False)
class ContextSetup:
    """One context with its exact caches and the full model's behaviour on its prompts.

    Attributes:
        n: context length; seed: the context's draw.
        caches: per layer, the exact ``[1, H, n, d]`` cache.
        train_queries: per layer ``[H, N_train, d]`` queries of the training prompts;
            train_log_z ``[H, N]``, train_o ``[H, N, d]`` their exact targets.
        test_live: ``[N_test, 2Q − 1]`` live inputs; answers ``[N_test, Q]``.
        test_record: per layer ``(q, k, v, log_z, o)`` of the exact forward on the test prompts.
        correct, loss: ``[N_test, Q]`` of the full cache.
    """

    n: int
    seed: int
    caches: list
    train_queries: list
    train_log_z: list
    train_o: list
    test_live: torch.Tensor
    answers: torch.Tensor
    test_record: list
    correct: torch.Tensor
    loss: torch.Tensor

    @property
    def d_head(self) -> int:
        return self.caches[0].k.shape[-1]


def _score(logits: torch.Tensor, answers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = logits[:, 0::2]                                          # the ?k positions
    correct = logits.argmax(-1) == answers
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), answers, reduction="none")
    return correct, loss


@torch.no_grad()
def prepare_context(model: Transformer, spec: LookupSpec, n: int, *, seed: int = 0,
                    n_train: int = 16, n_test: int = 32) -> ContextSetup:
    """Draw a context of ``n`` tokens (seed ``seed``), its caches, ``n_train`` training and
    ``n_test`` test prompts, and the full cache's queries, targets and answers."""
    context = make_lookup(spec, n, 1, seed=seed).ids[:, :n]
    caches = context_cache(model, context)
    exact = [WeightedCache(c.k, c.v) for c in caches]
    train_live = question_prompts(spec, context[0], n_train, seed=seed + 1)[:, :-1]
    test = question_prompts(spec, context[0], n_test, seed=seed + 2)
    record: list = []
    forward_live(model, train_live, n, exact, record=record)
    heads = caches[0].k.shape[1]

    def flat(t: torch.Tensor) -> torch.Tensor:                      # [B, H, T, ...] → [H, B·T, ...]
        return t.transpose(0, 1).reshape(heads, -1, *t.shape[3:])

    test_record: list = []
    logits = forward_live(model, test[:, :-1], n, exact, record=test_record)
    correct, loss = _score(logits, test[:, 1::2])
    return ContextSetup(n, seed, caches, [flat(r[0]) for r in record], [flat(r[3]) for r in record],
                        [flat(r[4]) for r in record], test[:, :-1], test[:, 1::2], test_record,
                        correct, loss)


@torch.no_grad()
def evaluate(model: Transformer, setup: ContextSetup, summaries: Sequence) -> dict[str, float]:
    """Accuracy, loss and their gaps to the full cache with every layer summarized, and each
    layer's errors on the exact model's test queries (``logz_l``, ``o_l``, ``attn_l``) with
    their mean over layers ``attn``; ``attn_question``: that mean at the question positions
    only (the queries whose answers are scored)."""
    logits = forward_live(model, setup.test_live, setup.n, summaries)
    correct, loss = _score(logits, setup.answers)
    out = {"accuracy": float(correct.float().mean()), "loss": float(loss.mean()),
           "accuracy_full": float(setup.correct.float().mean()),
           "loss_full": float(setup.loss.mean())}
    out["accuracy_gap"] = out["accuracy_full"] - out["accuracy"]
    out["loss_gap"] = out["loss"] - out["loss_full"]
    attn, attn_q = [], []
    for layer, (summary, (q, k, v, log_z, o)) in enumerate(zip(summaries, setup.test_record)):
        z_hat, o_hat = summary(q)
        want = merge_attention(log_z, o, q, k, v)
        got = merge_attention(z_hat, o_hat, q, k, v)
        out[f"logz_{layer}"] = float((z_hat - log_z).pow(2).mean().sqrt())
        out[f"o_{layer}"] = float((o_hat - o).norm(dim=-1).mean() / o.norm(dim=-1).mean())
        out[f"attn_{layer}"] = float((got - want).norm(dim=-1).mean() / want.norm(dim=-1).mean())
        attn.append(out[f"attn_{layer}"])
        asked = (got - want)[..., 0::2, :].norm(dim=-1).mean() / want[..., 0::2, :].norm(dim=-1).mean()
        attn_q.append(float(asked))
    out["attn"] = float(np.mean(attn))
    out["attn_question"] = float(np.mean(attn_q))
    return out


def fit_context(setup: ContextSetup, widths: Sequence[int], *, steps: int = 400,
                seed: int = 0) -> Nectar:
    """Nectar's networks for every layer of ``setup`` (hidden width ``widths[l]``)."""
    return fit_nectar(setup.train_queries, setup.train_log_z, setup.train_o, widths,
                      steps=steps, seed=seed)


def allocate(errors: Sequence[float], total: int) -> tuple[int, ...]:
    """Error-proportional widths: w_l ∝ e_l with Σ w_l = ``total`` (each ≥ 1, rounded by
    largest remainders)."""
    e = np.asarray(errors, dtype=float)
    if e.ndim != 1 or e.size == 0 or not np.all(np.isfinite(e)) or np.any(e < 0):
        raise ValueError(f"errors must be finite and >= 0, one per layer, got {list(errors)}")
    total = check_count("total", total, minimum=e.size)
    share = e / e.sum() if e.sum() > 0 else np.full(e.size, 1.0 / e.size)
    raw = 1 + share * (total - e.size)
    w = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - w))[: total - int(w.sum())]:
        w[i] += 1
    return tuple(int(x) for x in w)


@dataclass(frozen=True)
class NectarStudy:
    """Rows of :func:`nectar_study` (one per context × setting) and its settings.

    Each row: ``n``, ``context`` (its seed), ``method`` (one of :data:`METHODS` or
    ``"nectar_uniform"`` / ``"nectar_proportional"`` for the allocation study), ``width``
    (Nectar's per-layer widths, a tuple; baselines: those of the matched Nectar), ``tokens``
    (memory per head, cached tokens, mean over layers) and :func:`evaluate`'s numbers."""

    rows: tuple[dict, ...]
    ns: tuple[int, ...]
    widths: tuple[int, ...]
    contexts: int
    seconds: float
    n_layers: int = 2
    settings: dict = field(default_factory=dict)


def nectar_study(
    model: Transformer,
    spec: LookupSpec,
    *,
    ns: Sequence[int] = (128, 256, 512),
    widths: Sequence[int] = (2, 4, 8),
    contexts: int = 2,
    seed: int = 0,
    steps: int = 400,
    n_train: int = 16,
    n_test: int = 32,
    allocation_width: int | None = None,
) -> NectarStudy:
    """Every method at every memory (Nectar of width w and the baselines at its token count)
    for ``contexts`` contexts of each length in ``ns``; then, at ``allocation_width`` (default
    the smallest width), uniform against error-proportional layer widths (:func:`allocate` on
    the uniform fit's per-layer ``attn`` errors, the same total)."""
    start = time.perf_counter()
    widths = tuple(check_count("widths", w) for w in widths)
    alloc_w = widths[0] if allocation_width is None else check_count("allocation_width",
                                                                      allocation_width)
    n_layers = len(model.blocks)
    rows = []
    for n in ns:
        for c in range(check_count("contexts", contexts)):
            cseed = seed * 1000 + c * 7 + n
            setup = prepare_context(model, spec, n, seed=cseed, n_train=n_train, n_test=n_test)
            d = setup.d_head
            fits = {}
            for w in sorted(set(widths) | {alloc_w}):
                fits[w] = fit_context(setup, [w] * n_layers, steps=steps, seed=cseed)
            for w in widths:
                tokens = nectar_tokens(w, d)
                m = max(1, round(tokens))
                base = {"n": n, "context": cseed, "width": (w,) * n_layers, "tokens": tokens}
                rows.append({**base, "method": "nectar",
                             **evaluate(model, setup, fits[w].summaries())})
                g = torch.Generator().manual_seed(cseed)
                for method in BASELINES:
                    summaries = [compress(method, cache, m, generator=g) for cache in setup.caches]
                    rows.append({**base, "method": method, "tokens": float(m),
                                 **evaluate(model, setup, summaries)})
            uniform = evaluate(model, setup, fits[alloc_w].summaries())
            wl = allocate([uniform[f"attn_{layer}"] for layer in range(n_layers)],
                          alloc_w * n_layers)
            prop = fit_context(setup, wl, steps=steps, seed=cseed)
            for method, w_used, result in (
                ("nectar_uniform", (alloc_w,) * n_layers, uniform),
                ("nectar_proportional", wl, evaluate(model, setup, prop.summaries()))):
                rows.append({"n": n, "context": cseed, "method": method, "width": w_used,
                             "tokens": float(np.mean([nectar_tokens(x, d) for x in w_used])),
                             **result})
    return NectarStudy(tuple(rows), tuple(ns), widths, contexts, time.perf_counter() - start,
                       n_layers, {"steps": steps, "n_train": n_train, "n_test": n_test,
                                  "allocation_width": alloc_w})


def mean_rows(study: NectarStudy,
              keys: Sequence[str] = ("accuracy_gap", "loss_gap", "attn", "attn_question")
              ) -> list[dict]:
    """Rows averaged over contexts, one per (method, width, n), in the study's order."""
    groups: dict = {}
    for r in study.rows:
        groups.setdefault((r["method"], r["width"], r["n"]), []).append(r)
    out = []
    for (method, width, n), rs in groups.items():
        row = {"method": method, "width": width, "n": n, "tokens": rs[0]["tokens"]}
        for k in keys:
            row[k] = float(np.mean([r[k] for r in rs]))
        out.append(row)
    return out


def icnn_study(setup: ContextSetup, width: int, *, steps: int = 400, seed: int = 0
               ) -> dict[str, float]:
    """log Z's test RMSE per layer (mean over heads) of the MLP score network and of an ICNN
    with the same hidden width: keys ``mlp_{l}``, ``icnn_{l}``."""
    nectar = fit_context(setup, [width] * len(setup.caches), steps=steps, seed=seed)
    out = {}
    for layer, (q, *_rest, log_z, _o) in enumerate(setup.test_record):
        z_hat, _ = nectar.predict(layer, q)
        out[f"mlp_{layer}"] = float((z_hat - log_z).pow(2).mean().sqrt())
        errs = []
        for h in range(q.shape[1]):
            predict = fit_icnn_log_z(setup.train_queries[layer][h], setup.train_log_z[layer][h],
                                     hidden=(width,), steps=steps, seed=seed)
            qh = q[:, h].reshape(-1, q.shape[-1])
            errs.append(float((predict(qh) - log_z[:, h].reshape(-1)).pow(2).mean()))
        out[f"icnn_{layer}"] = math.sqrt(float(np.mean(errs)))
    return out


@torch.no_grad()
def latency(cache: LayerCache, nectar: Nectar, ns: Sequence[int], *, reps: int = 200,
            layer: int = 0) -> list[dict]:
    """Seconds per decoding step of one layer's attention (H heads, one query, one live token)
    through the full cache of n tokens (the first n of ``cache``, tiled if shorter) and through
    ``nectar``'s networks, for each n; the median of ``reps`` timed calls (this machine's CPU)."""
    reps = check_count("reps", reps)
    heads, d = cache.k.shape[1], cache.k.shape[-1]
    q = torch.randn(1, heads, 1, d, generator=torch.Generator().manual_seed(0))
    live_k, live_v = torch.randn(1, heads, 1, d), torch.randn(1, heads, 1, d)
    out = []
    for n in ns:
        tiles = -(-n // cache.n)
        k = cache.k.repeat(1, 1, tiles, 1)[..., :n, :].contiguous()
        v = cache.v.repeat(1, 1, tiles, 1)[..., :n, :].contiguous()

        def full() -> torch.Tensor:
            return merge_attention(*cache_targets(q, k, v), q, live_k, live_v)

        def nec() -> torch.Tensor:
            return merge_attention(*nectar.predict(layer, q), q, live_k, live_v)

        row = {"n": n}
        for name, fn in (("full", full), ("nectar", nec)):
            for _ in range(5):
                fn()
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            row[name] = float(np.median(times))
        out.append(row)
    return out


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(scipy_stats.spearmanr(x, y).statistic)


def read_claims(study: NectarStudy, timing: Sequence[dict] | None = None) -> dict[str, object]:
    """The claims' numbers: Spearman's ρ of the mean ``attn`` error against the accuracy gap
    and the loss gap over the settings of :func:`mean_rows` (:data:`METHODS` only); the
    paired comparison (over contexts) of the proportional allocation's loss gap and error
    against the uniform one's; Nectar's gaps against each baseline's at every width; the
    latency ratios between the largest and the smallest n."""
    means = [r for r in mean_rows(study) if r["method"] in METHODS]
    out: dict[str, object] = {
        "spearman_accuracy": _spearman([r["attn"] for r in means],
                                       [r["accuracy_gap"] for r in means]),
        "spearman_loss": _spearman([r["attn"] for r in means], [r["loss_gap"] for r in means]),
        "spearman_accuracy_question": _spearman([r["attn_question"] for r in means],
                                                [r["accuracy_gap"] for r in means]),
        "settings": len(means),
    }
    uni = [r for r in study.rows if r["method"] == "nectar_uniform"]
    prop = [r for r in study.rows if r["method"] == "nectar_proportional"]
    for key in ("loss_gap", "attn", "accuracy_gap"):
        a, b = [r[key] for r in prop], [r[key] for r in uni]
        out[f"proportional_{key}"] = float(np.mean(a))
        out[f"uniform_{key}"] = float(np.mean(b))
        out[f"proportional_{key}_verdict"] = compare(a, b).verdict if len(a) >= 2 and \
            np.ptp(np.subtract(a, b)) > 0 else ("tie" if np.allclose(a, b) else
                                                ("lower" if np.mean(a) < np.mean(b) else "higher"))
    for method in BASELINES:
        for w in study.widths:
            a = [r["loss_gap"] for r in study.rows if r["method"] == "nectar" and r["width"][0] == w]
            b = [r["loss_gap"] for r in study.rows if r["method"] == method and r["width"][0] == w]
            out[f"nectar_vs_{method}_w{w}_verdict"] = compare(a, b).verdict
    for method in METHODS:
        rs = [r for r in study.rows if r["method"] == method]
        out[f"{method}_accuracy_gap"] = float(np.mean([r["accuracy_gap"] for r in rs]))
        out[f"{method}_loss_gap"] = float(np.mean([r["loss_gap"] for r in rs]))
        out[f"{method}_attn"] = float(np.mean([r["attn"] for r in rs]))
    if timing:
        first, last = timing[0], timing[-1]
        out["latency_full_ratio"] = last["full"] / first["full"]
        out["latency_nectar_ratio"] = last["nectar"] / first["nectar"]
        out["latency_speedup_at_max_n"] = last["full"] / last["nectar"]
    return out
