"""The experiment of notebook 16: does the best learning rate drift as the transformer grows?

Dey et al. (2025), "Don't be lazy: CompleteP enables compute-efficient deep transformers"
(arXiv:2505.01618), Figure 1 (left) and Section 4: under the standard parameterization (SP)
the learning rate η* that minimizes the loss moves as the model is made wider or deeper, so
η must be re-tuned at every size; μP (Yang et al. 2022) holds η* fixed across widths,
CompleteP (α = 1) across widths *and* depths. The rules are those of
:mod:`otkit.nn.parameterization` (its module docstring has the table and the forms used).

The run here, at laptop scale:

* **Data**: generated text from a bigram Markov chain on V tokens, P[a, b] = softmax(z_a / τ)
  with z_a ~ N(0, I) (:func:`bigram_table`, fixed by ``table_seed``); sequences of
  ``length`` + 1 tokens with the first drawn uniformly (:func:`markov_text`). The best
  possible next-token loss is the chain's entropy rate Σ_a π_a H(P[a]) (:func:`entropy_rate`,
  π the stationary law).
* **Models**: the lab's :class:`~otkit.nn.transformer.Transformer` (untied, d_mlp = 4·width,
  head dimension fixed at :attr:`TransferGrid.head_dim` so heads grow with width), widths
  ``widths`` at the base depth and depths ``depths`` at the base width (a cross, not a full
  grid: the two axes are the paper's two transfer claims).
* **Training**: :func:`otkit.nn.trainer.train`, AdamW (β = (0.9, 0.98), ε = 1e-8, no weight
  decay, no clipping), warmup 10% then cosine, on a log₂ grid of η; the score is the loss on
  held-out sequences after the last step (NaN or above ln V, i.e. diverged or no better than
  uniform, counts as ln V).
* **Best η**: per seed and per curve, a parabola in log₂ η through the grid's minimum and its
  two neighbours (:func:`best_log2_lr`; a minimum on the grid's edge stays there and is
  flagged). **Drift** = log₂ η*(size) − log₂ η*(base), in octaves, with a Student t interval
  over seeds (:func:`otkit.stats.mean_interval`) and the estimate of the seed-mean curve.

**Batch size and duration** (:func:`batch_duration_sweep`): Mlodozeniec et al. (2025),
"Completed hyperparameter transfer across modules, width, depth, batch and duration"
(arXiv:2512.22382) also transfer η across the batch size and the length of the run with
SDE-based rules; the form used is :func:`otkit.nn.parameterization.sde_scaling` (its docstring
says which parts are this library's reading). At the base shape, the η sweep is repeated at
κ_B× the batch for 1/κ_B of the steps and at κ_D× the steps, each without and with the rule;
:func:`rule_drift` is the drift of the best *base* rate (0 if the rule transfers η*).

Runs that are the same computation under two schemes (μP at the base width is SP; CompleteP
and depth-μP at the base depth are μP: their :class:`~otkit.nn.parameterization.Multipliers`
agree) are trained once and shared (:func:`lr_sweep` says so in ``shared``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch

from ..nn.parameterization import (
    SCHEMES,
    SDEScaling,
    multipliers,
    parameterize_transformer,
    sde_scaling,
)
from ..nn.trainer import TrainerConfig, train
from ..nn.transformer import Transformer, TransformerConfig
from ..stats import Interval, compare, mean_interval
from ..validation import check_choice, check_count, check_positive

__all__ = [
    "TransferGrid", "TransferStudy", "bigram_table", "markov_text", "entropy_rate",
    "train_once", "lr_sweep", "best_log2_lr", "drift", "read_claims", "QUICK", "FULL",
    "BatchDurationStudy", "batch_duration_sweep", "rule_drift", "read_rule_claims", "BETAS",
]

#: AdamW's (β₁, β₂) at the base batch size (:func:`train_once`).
BETAS = (0.9, 0.98)


@dataclass(frozen=True)
class TransferGrid:
    """What :func:`lr_sweep` trains.

    Attributes:
        schemes: parameterizations (from :data:`otkit.nn.parameterization.SCHEMES`).
        widths: d_model values at ``base_depth`` (must contain ``base_width``).
        depths: block counts at ``base_width`` (must contain ``base_depth``).
        base_width, base_depth: where every scheme is SP and η is "tuned".
        log2_lrs: the η grid, as log₂ η, increasing and evenly spaced.
        seeds: one run per seed (the seed draws the init, the batches and the data).
        steps, batch_size: optimizer steps and sequences per step.
        vocab, length, temperature, table_seed: the Markov chain and sequence length.
        n_train, n_eval: training and held-out sequences.
        head_dim: channels per attention head.
        qk_norm: LayerNorm Q and K per head (:class:`~otkit.nn.transformer.TransformerConfig`'s
            ``qk_norm``; the paper's Complete(d)P uses it).
    """

    schemes: tuple[str, ...] = ("sp", "mup", "completep")
    widths: tuple[int, ...] = (16, 32, 64)
    depths: tuple[int, ...] = (2, 4)
    base_width: int = 16
    base_depth: int = 2
    log2_lrs: tuple[float, ...] = (-9.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0)
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 100
    batch_size: int = 32
    vocab: int = 32
    length: int = 16
    temperature: float = 2.0
    table_seed: int = 0
    n_train: int = 4096
    n_eval: int = 256
    head_dim: int = 16
    qk_norm: bool = False

    def __post_init__(self) -> None:
        if not self.schemes:
            raise ValueError("schemes must name at least one parameterization")
        for s in self.schemes:
            check_choice("schemes", s, SCHEMES)
        for name in ("widths", "depths", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        for w in self.widths:
            check_count("widths", w)
            if w % self.head_dim:
                raise ValueError(f"widths must be multiples of head_dim={self.head_dim}, got {w}")
        for d in self.depths:
            check_count("depths", d)
        if self.base_width not in self.widths:
            raise ValueError(f"widths {self.widths} must contain base_width={self.base_width}")
        if self.base_depth not in self.depths:
            raise ValueError(f"depths {self.depths} must contain base_depth={self.base_depth}")
        lrs = np.asarray(self.log2_lrs, dtype=float)
        if lrs.size < 3 or not np.all(np.isfinite(lrs)) or not np.allclose(
                np.diff(lrs), lrs[1] - lrs[0]) or lrs[1] <= lrs[0]:
            raise ValueError(f"log2_lrs must be >= 3 increasing, evenly spaced numbers, got "
                             f"{self.log2_lrs}")
        for name in ("steps", "batch_size", "vocab", "length", "n_train", "n_eval", "head_dim"):
            check_count(name, getattr(self, name))
        check_positive("temperature", self.temperature)
        if not isinstance(self.qk_norm, bool):
            raise TypeError(f"qk_norm must be a bool, got {self.qk_norm!r}")

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(width, depth) pairs: the width axis at the base depth, then the depth axis."""
        out = [(w, self.base_depth) for w in self.widths]
        return out + [(self.base_width, d) for d in self.depths if d != self.base_depth]


#: The notebook's quick grid (2 seeds, 7 rates 2⁻⁹…2⁻³, widths 16–64, depths 2–4, 100 steps).
QUICK = TransferGrid()
#: The larger grid of ``quick=False``: 3 seeds, 10 rates 2⁻¹²…2⁻³, widths to 128, depths to 8, depth-μP.
FULL = TransferGrid(schemes=("sp", "mup", "depth_mup", "completep"), widths=(16, 32, 64, 128),
                    depths=(2, 4, 8), log2_lrs=tuple(float(v) for v in range(-12, -2)),
                    seeds=(0, 1, 2), steps=200)


def bigram_table(vocab: int, temperature: float = 2.0, seed: int = 0) -> torch.Tensor:
    """P: ``[vocab, vocab]``, row a = softmax(z_a · temperature), z_a ~ N(0, I) from ``seed``
    (larger temperature: fewer likely successors)."""
    vocab = check_count("vocab", vocab, minimum=2)
    check_positive("temperature", temperature)
    z = torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(int(seed)),
                    dtype=torch.float64)
    return torch.softmax(z * temperature, dim=-1)


def entropy_rate(table: torch.Tensor) -> float:
    """Σ_a π_a H(P[a]) in nats, π the stationary law of ``table: [V, V]`` (row-stochastic):
    the lowest expected next-token loss once the chain has mixed."""
    if not isinstance(table, torch.Tensor) or table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise ValueError("table must be a square [V, V] tensor")
    p = table.double()
    evals, evecs = torch.linalg.eig(p.T)
    pi = evecs[:, torch.argmin((evals - 1).abs())].real
    pi = pi / pi.sum()
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(1)
    return float((pi * h).sum())


def markov_text(n: int, table: torch.Tensor, *, length: int = 16, seed: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences of the chain ``table``: ``(inputs, targets)``, both ``[n, length]``
    int64, targets[:, t] = inputs[:, t + 1] (next-token pairs); the first token is uniform."""
    n = check_count("n", n)
    length = check_count("length", length)
    gen = torch.Generator().manual_seed(int(seed))
    v = table.shape[0]
    x = torch.empty(n, length + 1, dtype=torch.long)
    x[:, 0] = torch.randint(v, (n,), generator=gen)
    for t in range(1, length + 1):
        x[:, t] = torch.multinomial(table[x[:, t - 1]].float(), 1, generator=gen).squeeze(1)
    return x[:, :-1].contiguous(), x[:, 1:].contiguous()


def _data(grid: TransferGrid, seed: int):
    table = bigram_table(grid.vocab, grid.temperature, grid.table_seed)
    train_data = markov_text(grid.n_train, table, length=grid.length, seed=1000 + seed)
    eval_data = markov_text(grid.n_eval, table, length=grid.length, seed=2000 + seed)
    return train_data, eval_data


def train_once(grid: TransferGrid, scheme: str, width: int, depth: int, log2_lr: float,
               seed: int, data=None, rule: SDEScaling | None = None) -> float:
    """Held-out loss after training one model (capped at ln V: diverged or useless runs).

    ``rule``: batch-size/duration factors (:func:`otkit.nn.parameterization.sde_scaling`)
    applied on top of the scheme's groups, η = 2^log2_lr being the base batch's rate."""
    (xi, yi), (xe, ye) = _data(grid, seed) if data is None else data
    cfg = TransformerConfig(vocab_size=grid.vocab, d_model=width, n_layers=depth,
                            n_heads=width // grid.head_dim, d_mlp=4 * width,
                            max_len=grid.length, tied=False, qk_norm=grid.qk_norm)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    lr = 2.0 ** log2_lr
    p = parameterize_transformer(model, scheme, base_width=grid.base_width,
                                 base_depth=grid.base_depth, lr=lr,
                                 generator=torch.Generator().manual_seed(seed))
    groups = p.groups if rule is None else rule.apply(p.groups, BETAS)
    config = TrainerConfig(steps=grid.steps, batch_size=grid.batch_size, lr=lr,
                           weight_decay=0.0, warmup=max(1, grid.steps // 10),
                           grad_clip=None, eval_every=grid.steps,
                           betas=BETAS if rule is None else rule.betas(BETAS))
    result = train(model, xi, yi, config=config, eval_inputs=xe, eval_targets=ye,
                   groups=groups, seed=seed, progress=False)
    loss = result.eval_losses[-1]
    cap = math.log(grid.vocab)
    return cap if not math.isfinite(loss) or loss > cap else float(loss)


def _key(scheme: str, grid: TransferGrid, width: int, depth: int) -> tuple:
    m = multipliers(scheme, width=width, base_width=grid.base_width, depth=depth,
                    base_depth=grid.base_depth)
    return (width, depth) + tuple(getattr(m, f.name) for f in fields(m)
                                  if f.name not in ("scheme", "alpha"))


@dataclass(frozen=True)
class TransferStudy:
    """The losses of :func:`lr_sweep`.

    Attributes:
        grid: the :class:`TransferGrid`.
        losses: ``[schemes, shapes, lrs, seeds]`` held-out losses (``grid.shapes`` order).
        shared: ``{(scheme, width, depth): scheme whose identical runs were reused}``.
        entropy: the chain's entropy rate (the loss floor).
        seconds: wall-clock time of the sweep; runs: distinct trainings.
    """

    grid: TransferGrid
    losses: np.ndarray
    shared: dict = field(default_factory=dict)
    entropy: float = float("nan")
    seconds: float = 0.0
    runs: int = 0

    def curve(self, scheme: str, width: int, depth: int) -> np.ndarray:
        """``[lrs, seeds]`` losses of one scheme at one shape."""
        check_choice("scheme", scheme, self.grid.schemes)
        shape = (width, depth)
        if shape not in self.grid.shapes:
            raise ValueError(f"(width, depth)={shape} is not in the grid {self.grid.shapes}")
        return self.losses[self.grid.schemes.index(scheme), self.grid.shapes.index(shape)]


def lr_sweep(grid: TransferGrid = QUICK) -> TransferStudy:
    """Train every (scheme, shape, η, seed) of ``grid`` once (identical computations once)."""
    if not isinstance(grid, TransferGrid):
        raise TypeError(f"grid must be a TransferGrid, got {type(grid).__name__}")
    start = time.perf_counter()
    shapes = grid.shapes
    losses = np.full((len(grid.schemes), len(shapes), len(grid.log2_lrs), len(grid.seeds)),
                     np.nan)
    done: dict[tuple, tuple[str, np.ndarray]] = {}
    shared = {}
    runs = 0
    datas = {s: _data(grid, s) for s in grid.seeds}
    for i, scheme in enumerate(grid.schemes):
        for j, (w, d) in enumerate(shapes):
            key = _key(scheme, grid, w, d)
            if key in done:
                shared[(scheme, w, d)] = done[key][0]
                losses[i, j] = done[key][1]
                continue
            for k, lr in enumerate(grid.log2_lrs):
                for s, seed in enumerate(grid.seeds):
                    losses[i, j, k, s] = train_once(grid, scheme, w, d, lr, seed, datas[seed])
                    runs += 1
            done[key] = (scheme, losses[i, j].copy())
    table = bigram_table(grid.vocab, grid.temperature, grid.table_seed)
    return TransferStudy(grid, losses, shared, entropy_rate(table),
                         time.perf_counter() - start, runs)


def best_log2_lr(log2_lrs: Sequence[float], losses: Sequence[float]) -> tuple[float, bool]:
    """The minimizer of a loss-against-log₂ η curve: ``(log₂ η*, interior)``.

    A parabola through the grid's minimum and its two neighbours (evenly spaced x): with
    y₋, y₀, y₊ at x₀ − h, x₀, x₀ + h, x* = x₀ + h (y₋ − y₊) / (2 (y₋ − 2y₀ + y₊)), clipped to
    [x₀ − h, x₀ + h]. A minimum at the grid's edge returns that grid point with
    ``interior=False``.
    """
    x = np.asarray(log2_lrs, dtype=float)
    y = np.asarray(losses, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size < 3:
        raise ValueError("log2_lrs and losses must be 1-d of the same length >= 3")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"losses must be finite, got {y.tolist()}")
    i = int(np.argmin(y))
    if i == 0 or i == x.size - 1:
        return float(x[i]), False
    h = x[i + 1] - x[i]
    ym, y0, yp = y[i - 1], y[i], y[i + 1]
    curv = ym - 2 * y0 + yp
    if curv <= 0:
        return float(x[i]), True
    shift = h * (ym - yp) / (2 * curv)
    return float(x[i] + np.clip(shift, -h, h)), True


@dataclass(frozen=True)
class Drift:
    """The drift of η* from the base shape to ``(width, depth)`` under ``scheme``, in octaves.

    Attributes:
        per_seed: log₂ η*(shape) − log₂ η*(base) for each seed.
        interval: Student t interval of their mean (95%; NaN bounds with one seed).
        of_mean: the same drift read on the seed-mean curves.
        best_log2_lr: log₂ η* of the seed-mean curve at this shape; edge: it lies on the grid's
            edge (at this shape or the base), so the drift may be larger than stated.
    """

    scheme: str
    width: int
    depth: int
    per_seed: tuple[float, ...]
    interval: Interval
    of_mean: float
    best_log2_lr: float
    edge: bool


def drift(study: TransferStudy, scheme: str, width: int, depth: int) -> Drift:
    """η*'s drift from the base shape to ``(width, depth)`` (:class:`Drift`)."""
    g = study.grid
    base = study.curve(scheme, g.base_width, g.base_depth)
    here = study.curve(scheme, width, depth)
    per_seed = []
    for s in range(len(g.seeds)):
        per_seed.append(best_log2_lr(g.log2_lrs, here[:, s])[0]
                        - best_log2_lr(g.log2_lrs, base[:, s])[0])
    b, b_in = best_log2_lr(g.log2_lrs, base.mean(1))
    h, h_in = best_log2_lr(g.log2_lrs, here.mean(1))
    interval = (mean_interval(per_seed) if len(per_seed) > 1
                else Interval(per_seed[0], math.nan, math.nan, 1, 0.95))
    return Drift(scheme, width, depth, tuple(per_seed), interval, h - b, h, not (b_in and h_in))


def read_claims(study: TransferStudy) -> dict[str, object]:
    """The numbers behind the notebook's reading.

    Keys: ``drift_<scheme>_width`` and ``drift_<scheme>_depth`` (the seed-mean curves' drift,
    octaves, at the widest and the deepest shape), their ``_low``/``_high`` (the seeds'
    interval), ``max_drift_<scheme>`` (largest |drift| over both), ``edge_<scheme>``, and the
    paper's claim: ``claim_completep_le_1`` (CompleteP's max |drift| ≤ 1), ``claim_sp_ge_2``
    (SP's ≥ 2) and ``claim_reproduced`` (both). Schemes not in the grid are left out.
    """
    g = study.grid
    wide = (max(g.widths), g.base_depth)
    deep = (g.base_width, max(g.depths))
    out: dict[str, object] = {"entropy": study.entropy, "runs": study.runs}
    for scheme in g.schemes:
        worst, edge = 0.0, False
        for axis, shape in (("width", wide), ("depth", deep)):
            if shape == (g.base_width, g.base_depth):
                continue
            dr = drift(study, scheme, *shape)
            out[f"drift_{scheme}_{axis}"] = dr.of_mean
            out[f"drift_{scheme}_{axis}_low"] = dr.interval.low
            out[f"drift_{scheme}_{axis}_high"] = dr.interval.high
            worst = max(worst, abs(dr.of_mean))
            edge = edge or dr.edge
        out[f"max_drift_{scheme}"] = worst
        out[f"edge_{scheme}"] = edge
        base = study.curve(scheme, g.base_width, g.base_depth).mean(1)
        out[f"best_loss_{scheme}_base"] = float(base.min())
        for axis, shape in (("width", wide), ("depth", deep)):
            out[f"best_loss_{scheme}_{axis}"] = float(study.curve(scheme, *shape).mean(1).min())
    if "completep" in g.schemes and "sp" in g.schemes:
        out["claim_completep_le_1"] = bool(out["max_drift_completep"] <= 1.0)
        out["claim_sp_ge_2"] = bool(out["max_drift_sp"] >= 2.0)
        out["claim_reproduced"] = bool(out["claim_completep_le_1"] and out["claim_sp_ge_2"])
    return out


# --- batch size and duration (Mlodozeniec et al. 2025; the rule's forms: sde_scaling) ---

#: The two axes of :func:`batch_duration_sweep`.
AXES = ("batch", "duration")


@dataclass(frozen=True)
class BatchDurationStudy:
    """Learning-rate sweeps of the base model at another batch size and another duration, with
    and without the batch/duration rule (:func:`otkit.nn.parameterization.sde_scaling`).

    Attributes:
        grid: the :class:`TransferGrid` whose base model, η grid and seeds are used.
        batch_ratio: κ_B; the batch arm trains grid.batch_size·κ_B sequences per step for
            grid.steps/κ_B steps (the same sequences in all).
        duration_ratio: κ_D; the duration arm trains grid.steps·κ_D steps at grid.batch_size.
        base: ``[lrs, seeds]`` held-out losses at the base batch and duration.
        losses: ``[axes, 2, lrs, seeds]``: axis (:data:`AXES`), without (0) and with (1) the
            rule; the η axis is the *base* rate 2^log2_lr, which the rule rescales.
        rules: the :class:`~otkit.nn.parameterization.SDEScaling` of each axis.
        seconds, runs: wall-clock time and trainings (the base curve reused is not counted).
    """

    grid: TransferGrid
    batch_ratio: int
    duration_ratio: float
    base: np.ndarray
    losses: np.ndarray
    rules: dict
    seconds: float = 0.0
    runs: int = 0


def _arm_grid(grid: TransferGrid, axis: str, batch_ratio: int, duration_ratio: float
              ) -> TransferGrid:
    if axis == "batch":
        return replace(grid, batch_size=grid.batch_size * batch_ratio,
                       steps=grid.steps // batch_ratio)
    return replace(grid, steps=round(grid.steps * duration_ratio))


def batch_duration_sweep(grid: TransferGrid = QUICK, *, batch_ratio: int = 4,
                         duration_ratio: float = 0.25,
                         study: TransferStudy | None = None) -> BatchDurationStudy:
    """Sweep η for SP at the base shape at batch κ_B·B₀ (same sequences) and at duration
    κ_D·S₀ steps (same batch), each with and without the rule; the base curve is taken from
    ``study`` (a :func:`lr_sweep` of the same grid) when given, else trained.

    Raises:
        ValueError naming ``batch_ratio`` (not an integer ≥ 2 dividing grid.steps into ≥ 10
        steps, or making 1 − β exceed 1) or ``duration_ratio`` (not > 0, ≠ 1, or fewer than
        10 steps).
    """
    if not isinstance(grid, TransferGrid):
        raise TypeError(f"grid must be a TransferGrid, got {type(grid).__name__}")
    batch_ratio = check_count("batch_ratio", batch_ratio, minimum=2)
    if grid.steps % batch_ratio or grid.steps // batch_ratio < 10:
        raise ValueError(f"batch_ratio={batch_ratio} must divide steps={grid.steps} into at "
                         "least 10 steps")
    check_positive("duration_ratio", duration_ratio)
    if duration_ratio == 1.0 or round(grid.steps * duration_ratio) < 10:
        raise ValueError(f"duration_ratio={duration_ratio} must differ from 1 and leave at "
                         f"least 10 of steps={grid.steps}")
    rules = {"batch": sde_scaling(batch_size=grid.batch_size * batch_ratio,
                                  base_batch_size=grid.batch_size),
             "duration": sde_scaling(batch_size=grid.batch_size, base_batch_size=grid.batch_size,
                                     samples=round(grid.steps * duration_ratio) * grid.batch_size,
                                     base_samples=grid.steps * grid.batch_size)}
    try:
        rules["batch"].betas(BETAS)
    except ValueError as err:
        raise ValueError(f"batch_ratio={batch_ratio}: {err}") from None
    start = time.perf_counter()
    w, d = grid.base_width, grid.base_depth
    datas = {s: _data(grid, s) for s in grid.seeds}
    runs = 0
    n_lr, n_seed = len(grid.log2_lrs), len(grid.seeds)
    if study is not None:
        if study.grid != grid:
            raise ValueError("study must be a lr_sweep of the same grid")
        base = study.curve(study.grid.schemes[0], w, d).copy()  # every scheme is SP at the base
    else:
        base = np.array([[train_once(grid, "sp", w, d, lr, seed, datas[seed])
                          for seed in grid.seeds] for lr in grid.log2_lrs])
        runs += base.size
    losses = np.full((len(AXES), 2, n_lr, n_seed), np.nan)
    for a, axis in enumerate(AXES):
        arm = _arm_grid(grid, axis, batch_ratio, duration_ratio)
        for r, rule in enumerate((None, rules[axis])):
            for k, lr in enumerate(grid.log2_lrs):
                for s, seed in enumerate(grid.seeds):
                    losses[a, r, k, s] = train_once(arm, "sp", w, d, lr, seed, datas[seed], rule)
                    runs += 1
    return BatchDurationStudy(grid, batch_ratio, float(duration_ratio), base, losses, rules,
                              time.perf_counter() - start, runs)


def rule_drift(study: BatchDurationStudy, axis: str, rule: bool) -> Drift:
    """The drift of the best *base* rate log₂ η* from the base run to the ``axis`` arm, with
    (``rule=True``: 0 if the rule transfers η*) or without the rule (:class:`Drift`; its
    ``width``/``depth`` are the base shape's)."""
    check_choice("axis", axis, AXES)
    g = study.grid
    here = study.losses[AXES.index(axis), int(bool(rule))]
    per_seed = [best_log2_lr(g.log2_lrs, here[:, s])[0]
                - best_log2_lr(g.log2_lrs, study.base[:, s])[0] for s in range(len(g.seeds))]
    b, b_in = best_log2_lr(g.log2_lrs, study.base.mean(1))
    h, h_in = best_log2_lr(g.log2_lrs, here.mean(1))
    interval = (mean_interval(per_seed) if len(per_seed) > 1
                else Interval(per_seed[0], math.nan, math.nan, 1, 0.95))
    return Drift("sp", g.base_width, g.base_depth, tuple(per_seed), interval, h - b, h,
                 not (b_in and h_in))


def read_rule_claims(study: BatchDurationStudy) -> dict[str, object]:
    """The numbers behind the notebook's batch/duration reading.

    Keys per axis (``batch``, ``duration``): ``drift_<axis>_norule`` / ``_rule`` (seed-mean
    curves' drift in octaves) with ``_low``/``_high`` (interval over seeds), ``edge_<axis>``,
    ``rule_within_1_<axis>`` (|drift with the rule| ≤ 1 octave), ``abs_drift_rule_vs_norule_
    <axis>`` (paired verdict on |drift| per seed: ``"lower"``, ``"tie"`` or ``"higher"``; with
    one seed ``"tie"``), ``predicted_<axis>`` (the drift the rule predicts without it:
    log₂ of its η factor) and ``best_loss_<axis>_norule``/``_rule`` (seed-mean curves' minima).
    """
    out: dict[str, object] = {"best_loss_base": float(study.base.mean(1).min()),
                              "rule_runs": study.runs}
    for axis in AXES:
        drs = {}
        for tag, rule in (("norule", False), ("rule", True)):
            dr = rule_drift(study, axis, rule)
            drs[tag] = dr
            out[f"drift_{axis}_{tag}"] = dr.of_mean
            out[f"drift_{axis}_{tag}_low"] = dr.interval.low
            out[f"drift_{axis}_{tag}_high"] = dr.interval.high
            curve = study.losses[AXES.index(axis), int(rule)].mean(1)
            out[f"best_loss_{axis}_{tag}"] = float(curve.min())
        out[f"edge_{axis}"] = drs["norule"].edge or drs["rule"].edge
        out[f"rule_within_1_{axis}"] = bool(abs(drs["rule"].of_mean) <= 1.0)
        out[f"predicted_{axis}"] = math.log2(study.rules[axis].lr)
        if len(study.grid.seeds) > 1:
            out[f"abs_drift_rule_vs_norule_{axis}"] = compare(
                np.abs(drs["rule"].per_seed), np.abs(drs["norule"].per_seed)).verdict
        else:
            out[f"abs_drift_rule_vs_norule_{axis}"] = "tie"
    return out
