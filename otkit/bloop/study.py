"""The experiments of notebook 12: Pareto fronts of a main loss against an auxiliary loss.

Every run trains with :class:`otkit.nn.GradientSurgery` (one of Bloop, mixed, Dynamic Barrier,
PCGrad at a trade-off λ and an EMA speed ρ) and reports the final main and auxiliary losses;
sweeping λ draws each method's front (Hsieh et al. 2024, Section 5.1). Two problems:

* :func:`quadratic_study`: the paper's quadratic toy (its public notebook
  ``examples/quadratics.ipynb``): overparameterized linear regression with p = 300 parameters
  and n = 256 points, L_main(θ) = ½ mean_i (x_iᵀθ − y_i)² on mini-batches, and a strongly
  convex L_aux(θ) = ½‖θ − θ_aux‖² whose minimizer is not a minimizer of L_main (:class:`QuadraticToy`);
* :func:`digits_study`: an MLP on scikit-learn's 8×8 digits (:func:`otkit.data.digits`), main
  loss the cross-entropy, auxiliary loss the log of a Lipschitz bound,
  L_aux = log Π_l ‖W_l‖₂² = Σ_l log ‖W_l‖₂² (:func:`lipschitz_loss`; the paper's Section 5.2
  on MNIST).

Rows are plain dicts: ``problem``, ``method``, ``lam``, ``rho``, ``seed``, ``main``, ``aux``,
``seconds`` (and ``test_main``, ``train_accuracy``, ``test_accuracy`` for the digits).
:func:`rho_sweep` varies ρ at one λ. :func:`equal_aux_comparison` reads two fronts at equal
auxiliary loss, seed by seed, and gives a lower / higher / tie verdict per λ over the seeds
(:func:`otkit.stats.compare`).

As in the paper's experiments, Bloop uses ρ = 0.01 and the baselines use no EMA (ρ = 1):
:data:`PAPER_RHO`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import digits
from ..nn.surgery import METHODS, GradientSurgery
from ..stats import compare
from ..validation import check_choice, check_count, check_positive

__all__ = [
    "PAPER_RHO", "TOY_LAMS", "DIGITS_LAMS", "QuadraticToy", "quadratic_toy", "train_quadratic",
    "quadratic_study", "lipschitz_mlp", "lipschitz_loss", "train_digits", "digits_study",
    "rho_sweep", "pareto_front", "main_at_aux", "equal_aux_comparison", "summarize_comparison",
    "mean_front",
]

#: ρ of each method in the paper's comparisons: an EMA for Bloop, none for the baselines.
PAPER_RHO = {"bloop": 0.01, "mixed": 1.0, "dynamic_barrier": 1.0, "pcgrad": 1.0}
#: λ ∈ logspace(−3, 3) for the toy (the public notebook's range).
TOY_LAMS = tuple(float(v) for v in np.logspace(-3, 3, 7))
#: λ for the digits MLP (from training on the main loss alone to a collapsed network).
DIGITS_LAMS = (0.01, 0.03, 0.1, 0.3, 1.0)


def _rhos(rho: float | Mapping[str, float] | None, methods: Sequence[str]) -> dict[str, float]:
    for m in methods:
        check_choice("methods", m, METHODS)
    if rho is None:
        return {m: PAPER_RHO[m] for m in methods}
    if isinstance(rho, Mapping):
        missing = [m for m in methods if m not in rho]
        if missing:
            raise ValueError(f"rho has no value for {missing}")
        return {m: float(rho[m]) for m in methods}
    return {m: float(rho) for m in methods}


def _lams(lams: Sequence[float]) -> list[float]:
    lams = [float(v) for v in lams]
    if not lams:
        raise ValueError("lams is empty: give at least one trade-off λ")
    if any(not (math.isfinite(v) and v >= 0) for v in lams):
        raise ValueError(f"lams must be finite numbers >= 0, got {lams}")
    return lams


def _seeds(seeds: Sequence[int]) -> list[int]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise TypeError(f"seeds must be integers, got {s!r}")
    return seeds


# ------------------------------------------------------------------------------ quadratic toy


@dataclass(frozen=True, eq=False)
class QuadraticToy:
    """Linear regression with more parameters than points, and a quadratic auxiliary loss.

    ``x: [n, p]`` has rows N(0, I) scaled column-wise by linspace(1, conditioning, p),
    ``y = x θ* + noise · N(0, 1)``, ``target = 10 · N(0, I_p)``. L_main(θ) = ½ mean (xθ − y)²
    (its minimizers form an affine set of dimension p − n), L_aux(θ) = ½‖θ − target‖².
    """

    x: torch.Tensor
    y: torch.Tensor
    target: torch.Tensor

    def main_loss(self, theta: torch.Tensor) -> float:
        return 0.5 * float(((self.x @ theta - self.y) ** 2).mean())

    def aux_loss(self, theta: torch.Tensor) -> float:
        return 0.5 * float(((theta - self.target) ** 2).sum())


def quadratic_toy(p: int = 300, n: int = 256, *, conditioning: float = 10.0, noise: float = 0.05,
                  target_scale: float = 10.0, seed: int = 0) -> QuadraticToy:
    """The toy of the paper's public notebook (float64), drawn with ``seed``."""
    p, n = check_count("p", p), check_count("n", n)
    check_positive("conditioning", conditioning)
    gen = torch.Generator().manual_seed(seed)
    truth = torch.randn(p, generator=gen, dtype=torch.float64)
    target = target_scale * torch.randn(p, generator=gen, dtype=torch.float64)
    scale = torch.linspace(1.0, conditioning, p, dtype=torch.float64)
    x = torch.randn(n, p, generator=gen, dtype=torch.float64) * scale
    y = x @ truth + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    return QuadraticToy(x, y, target)


def _batches(n: int, batch_size: int, gen: torch.Generator):
    """The index batches of one epoch (a fresh permutation; the last short batch dropped)."""
    perm = torch.randperm(n, generator=gen)
    for i in range(n // batch_size):
        yield perm[i * batch_size:(i + 1) * batch_size]


def train_quadratic(toy: QuadraticToy, method: str, lam: float, rho: float, *, epochs: int = 1000,
                    batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> torch.Tensor:
    """SGD from θ = 0 along the merged direction; returns the final θ ``[p]``.

    Gradients are exact on each mini-batch: g_m = x_Bᵀ(x_B θ − y_B)/|B|, g_a = θ − target.
    """
    epochs, batch_size = check_count("epochs", epochs), check_count("batch_size", batch_size)
    if batch_size > toy.x.shape[0]:
        raise ValueError(f"batch_size must be at most n = {toy.x.shape[0]}, got {batch_size}")
    check_positive("lr", lr)
    theta = torch.zeros(toy.x.shape[1], dtype=torch.float64, requires_grad=True)
    surgery = GradientSurgery([theta], torch.optim.SGD([theta], lr=lr), method=method, lam=lam,
                              rho=rho)
    gen = torch.Generator().manual_seed(10_000 + seed)
    for _ in range(epochs):
        for idx in _batches(toy.x.shape[0], batch_size, gen):
            with torch.no_grad():
                xb = toy.x[idx]
                g_main = xb.T @ (xb @ theta - toy.y[idx]) / idx.numel()
                g_aux = theta - toy.target
            surgery.apply([g_main], [g_aux])
    return theta.detach()


def quadratic_study(lams: Sequence[float] = TOY_LAMS, *, methods: Sequence[str] = METHODS,
                    rho: float | Mapping[str, float] | None = None, seeds: Sequence[int] = (0, 1, 2),
                    p: int = 300, n: int = 256, epochs: int = 1000, batch_size: int = 64,
                    lr: float = 1e-3, conditioning: float = 10.0, noise: float = 0.05) -> list[dict]:
    """One row per (seed, method, λ): the final full-data ``main`` and ``aux`` losses.

    Each seed draws its own toy and its own batches. ``rho``: one ρ for every method, a
    mapping method → ρ, or ``None`` for :data:`PAPER_RHO`.
    """
    rhos, lams, seeds = _rhos(rho, methods), _lams(lams), _seeds(seeds)
    rows = []
    for seed in seeds:
        toy = quadratic_toy(p, n, conditioning=conditioning, noise=noise, seed=seed)
        for method in methods:
            for lam in lams:
                start = time.perf_counter()
                theta = train_quadratic(toy, method, lam, rhos[method], epochs=epochs,
                                        batch_size=batch_size, lr=lr, seed=seed)
                rows.append({
                    "problem": "quadratic", "method": method, "lam": lam, "rho": rhos[method],
                    "seed": seed, "main": toy.main_loss(theta), "aux": toy.aux_loss(theta),
                    "seconds": time.perf_counter() - start,
                })
    return rows


# ------------------------------------------------------------------------------ digits MLP


def lipschitz_mlp(hidden: Sequence[int] = (64, 64), *, inputs: int = 64, classes: int = 10,
                  seed: int = 0) -> nn.Sequential:
    """A ReLU MLP ``inputs → hidden… → classes`` (float32), initialized with ``seed``."""
    hidden = [check_count("hidden", h) for h in hidden]
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # nn.Linear draws from the global generator
    try:
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, classes))
    finally:
        torch.random.set_rng_state(gen_state)
    return nn.Sequential(*layers)


def lipschitz_loss(model: nn.Module) -> torch.Tensor:
    """Σ_l log ‖W_l‖₂² over the model's linear layers (the spectral norms by
    ``torch.linalg.matrix_norm(ord=2)``): the log of the squared Lipschitz bound Π_l ‖W_l‖₂ of
    a ReLU network."""
    norms = [torch.linalg.matrix_norm(m.weight, ord=2) for m in model.modules()
             if isinstance(m, nn.Linear)]
    if not norms:
        raise ValueError("model has no nn.Linear layer")
    return torch.stack([2 * torch.log(v) for v in norms]).sum()


def _digits_data():
    x_train, y_train = digits(split="train", return_labels=True)
    x_test, y_test = digits(split="test", return_labels=True)
    return x_train, y_train, x_test, y_test


def train_digits(method: str, lam: float, rho: float, *, hidden: Sequence[int] = (64, 64),
                 epochs: int = 20, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                 data=None) -> dict:
    """Adam on the merged direction of cross-entropy (mini-batches) and :func:`lipschitz_loss`;
    returns the final ``main`` (train cross-entropy), ``aux``, ``test_main``,
    ``train_accuracy`` and ``test_accuracy``."""
    epochs, batch_size = check_count("epochs", epochs), check_count("batch_size", batch_size)
    check_positive("lr", lr)
    x_train, y_train, x_test, y_test = _digits_data() if data is None else data
    model = lipschitz_mlp(hidden, seed=seed)
    params = list(model.parameters())
    surgery = GradientSurgery(params, torch.optim.Adam(params, lr=lr), method=method, lam=lam,
                              rho=rho)
    gen = torch.Generator().manual_seed(10_000 + seed)
    ce = nn.functional.cross_entropy
    for _ in range(epochs):
        for idx in _batches(x_train.shape[0], batch_size, gen):
            surgery.zero_grad()
            surgery.step(ce(model(x_train[idx]), y_train[idx]), lipschitz_loss(model))
    with torch.no_grad():
        train_logits, test_logits = model(x_train), model(x_test)
        return {
            "main": ce(train_logits, y_train).item(), "aux": lipschitz_loss(model).item(),
            "test_main": ce(test_logits, y_test).item(),
            "train_accuracy": (train_logits.argmax(1) == y_train).double().mean().item(),
            "test_accuracy": (test_logits.argmax(1) == y_test).double().mean().item(),
        }


def digits_study(lams: Sequence[float] = DIGITS_LAMS, *, methods: Sequence[str] = METHODS,
                 rho: float | Mapping[str, float] | None = None, seeds: Sequence[int] = (0, 1, 2),
                 hidden: Sequence[int] = (64, 64), epochs: int = 20, batch_size: int = 64,
                 lr: float = 1e-3) -> list[dict]:
    """One row per (seed, method, λ) of :func:`train_digits` (the seed draws the network's
    initialization and the batches; the train/test split is fixed)."""
    rhos, lams, seeds = _rhos(rho, methods), _lams(lams), _seeds(seeds)
    data = _digits_data()
    rows = []
    for seed in seeds:
        for method in methods:
            for lam in lams:
                start = time.perf_counter()
                result = train_digits(method, lam, rhos[method], hidden=hidden, epochs=epochs,
                                      batch_size=batch_size, lr=lr, seed=seed, data=data)
                rows.append({"problem": "digits", "method": method, "lam": lam,
                             "rho": rhos[method], "seed": seed, **result,
                             "seconds": time.perf_counter() - start})
    return rows


def rho_sweep(problem: str, rhos: Sequence[float], *, lam: float, method: str = "bloop",
              seeds: Sequence[int] = (0, 1, 2), reuse: Sequence[dict] = (), **kwargs) -> list[dict]:
    """Rows of ``method`` at one λ for each ρ in ``rhos`` and each seed (``problem``:
    ``"quadratic"`` or ``"digits"``; ``kwargs`` go to :func:`quadratic_study` or
    :func:`digits_study`). Runs already in ``reuse`` (same problem, method, λ, ρ and seed,
    made with the same ``kwargs``) are taken from there instead of trained again."""
    check_choice("problem", problem, ("quadratic", "digits"))
    study = quadratic_study if problem == "quadratic" else digits_study
    rhos, seeds = [float(r) for r in rhos], _seeds(seeds)
    if not rhos:
        raise ValueError("rhos is empty: give at least one EMA speed ρ")
    rows = []
    for r in rhos:
        for seed in seeds:
            done = [row for row in reuse if row["problem"] == problem and row["method"] == method
                    and row["lam"] == lam and row["rho"] == r and row["seed"] == seed]
            rows += done[:1] or study([lam], methods=[method], rho=r, seeds=[seed], **kwargs)
    return rows


# ------------------------------------------------------------------------------ reading fronts


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points (aux, main) that no other point beats on both losses, by increasing aux
    (so by decreasing main)."""
    front: list[tuple[float, float]] = []
    for aux, main in sorted(points, key=lambda q: (q[0], q[1])):
        if not front or main < front[-1][1]:
            front.append((aux, main))
    return front


def main_at_aux(points: Sequence[tuple[float, float]], aux: float) -> float:
    """The main loss of the front through ``points`` (aux, main) at auxiliary loss ``aux``:
    log(main) interpolated linearly in aux between neighbouring points of the Pareto front;
    NaN outside the front's range of aux."""
    front = pareto_front(points)
    xs = np.array([q[0] for q in front])
    logs = np.log(np.array([q[1] for q in front]))
    if not (xs[0] <= aux <= xs[-1]):
        return math.nan
    return float(np.exp(np.interp(aux, xs, logs)))


def _bracket(points: Sequence[tuple[float, float]], aux: float) -> tuple[float, float]:
    """The aux values of the Pareto-front points on either side of ``aux`` (NaN if none)."""
    xs = [q[0] for q in pareto_front(points)]
    below = [x for x in xs if x <= aux]
    above = [x for x in xs if x >= aux]
    return (max(below) if below else math.nan, min(above) if above else math.nan)


def equal_aux_comparison(rows: Sequence[dict], method: str = "bloop", baseline: str = "mixed",
                         *, key: str = "lam", score: str = "main",
                         level: float = 0.95) -> list[dict]:
    """``method`` against ``baseline`` at equal auxiliary loss, one row per value of ``key``
    (λ, or ρ for a ρ sweep) among ``method``'s rows. ``score`` names the loss read on the
    fronts: ``"main"`` (the training loss), or ``"test_main"`` for the digits' test loss.

    For each seed, the main loss of ``method`` is set against the main loss that the
    baseline's front of the same seed reaches at the same auxiliary loss (:func:`main_at_aux`;
    none where that aux lies outside the baseline's front). Over the seeds where both exist:

    * ``ratio``: geometric mean of baseline / method (> 1: ``method`` lower);
    * ``verdict``: :func:`otkit.stats.compare` on log10 of the main losses (``"lower"``:
      ``method``'s main loss is lower at equal aux, ``"tie"`` within seed noise; ``None`` with
      fewer than 2 seeds);
    * ``bracket``: the mean aux of the baseline's front points on either side (how far the
      interpolation reaches; a front with a gap, e.g. a network that collapses past some λ,
      leaves a wide bracket);

    and, with no interpolation, over all seeds: ``dominated`` (seeds where a baseline run has
    both losses at most ``method``'s) and ``dominates`` (seeds where ``method``'s run has both
    losses at most a baseline run's, one of them lower).
    """
    check_choice("method", method, METHODS)
    check_choice("baseline", baseline, METHODS)
    mine = [r for r in rows if r["method"] == method]
    if not mine:
        raise ValueError(f"rows hold no run of method {method!r}")
    if not any(r["method"] == baseline for r in rows):
        raise ValueError(f"rows hold no run of baseline {baseline!r}")
    out = []
    for value in sorted({r[key] for r in mine}):
        ours, theirs, auxes, brackets, dominated, dominates = [], [], [], [], 0, 0
        for r in (r for r in mine if r[key] == value):
            points = [(b["aux"], b[score]) for b in rows
                      if b["method"] == baseline and b["seed"] == r["seed"]]
            dominated += any(a <= r["aux"] and m <= r[score] for a, m in points)
            dominates += any(r["aux"] <= a and r[score] <= m and (r["aux"], r[score]) != (a, m)
                             for a, m in points)
            other = main_at_aux(points, r["aux"]) if points else math.nan
            if math.isfinite(other):
                ours.append(math.log10(r[score]))
                theirs.append(math.log10(other))
                auxes.append(r["aux"])
                brackets.append(_bracket(points, r["aux"]))
        row = {"method": method, "baseline": baseline, key: value, "seeds": len(ours),
               "aux": float(np.mean(auxes)) if auxes else math.nan,
               "ratio": 10 ** float(np.mean(np.subtract(theirs, ours))) if ours else math.nan,
               "verdict": None, "log10_difference": None,
               "bracket": tuple(float(v) for v in np.mean(brackets, axis=0)) if brackets
               else (math.nan, math.nan),
               "dominated": dominated, "dominates": dominates}
        if len(ours) >= 2:
            result = compare(ours, theirs, level=level)
            row["verdict"] = result.verdict
            row["log10_difference"] = (result.difference.low, result.difference.high)
        out.append(row)
    return out


def summarize_comparison(comparison: Sequence[dict], key: str = "lam") -> dict:
    """The verdicts of :func:`equal_aux_comparison` counted: ``lower``, ``higher``, ``tie``
    (values of ``key`` with each verdict) and ``incomparable`` (fewer than 2 seeds inside the
    baseline's front); ``ratio_max`` and ``at_max``: the largest ratio among the comparable
    values and where it is; ``dominated`` and ``dominates``: the dominance counts summed over
    values and seeds."""
    comparable = [c for c in comparison if c["verdict"] is not None]
    best = max(comparable, key=lambda c: c["ratio"], default=None)
    return {
        "lower": sum(c["verdict"] == "lower" for c in comparison),
        "higher": sum(c["verdict"] == "higher" for c in comparison),
        "tie": sum(c["verdict"] == "tie" for c in comparison),
        "incomparable": sum(c["verdict"] is None for c in comparison),
        "ratio_max": best["ratio"] if best else math.nan,
        "at_max": best[key] if best else None,
        "dominated": sum(c["dominated"] for c in comparison),
        "dominates": sum(c["dominates"] for c in comparison),
    }


def mean_front(rows: Sequence[dict], method: str, *, rho: float | None = None,
               key: str = "lam") -> list[dict]:
    """``method``'s front averaged over seeds: one row per λ (or per ``key``) with the mean
    aux and the geometric mean of main (and their spread: min and max over seeds)."""
    chosen = [r for r in rows if r["method"] == method and (rho is None or r["rho"] == rho)]
    out = []
    for value in sorted({r[key] for r in chosen}):
        runs = [r for r in chosen if r[key] == value]
        mains = np.array([r["main"] for r in runs])
        auxes = np.array([r["aux"] for r in runs])
        out.append({"method": method, key: value, "aux": float(auxes.mean()),
                    "main": float(np.exp(np.log(mains).mean())), "aux_min": float(auxes.min()),
                    "aux_max": float(auxes.max()), "main_min": float(mains.min()),
                    "main_max": float(mains.max()), "seeds": len(runs)})
    return out
