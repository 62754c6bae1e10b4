"""Equal-budget comparisons of flows fitted with different couplings (notebook 02).

Zhang et al. (2025) train the same network for the same number of SGD steps on pairs from
couplings across the entropic continuum — independent, Sinkhorn at relative ε on batches of
n points, exact — and score the samples at several inference budgets (NFE). This module
runs such a grid on a named benchmark and returns one dict row per (coupling, n, NFE):

* ``"moons"`` — 8 Gaussians → two moons (2-D);
* ``"checkerboard"`` — N(0, I₂) → a 4 × 4 checkerboard (2-D);
* ``"digits"`` — N(0, I₆₄) → scikit-learn's 8×8 digits (training split), with a conv net.

Semidiscrete couplings (SD-FM, :func:`semidiscrete_coupling`) pair fresh noise with a finite
target set, so they run on benchmarks built with ``train_size`` (2-D) or on digits.

2-D samples are scored by the exact W2 and the energy distance to a held-out reference
sample; digits by the Fréchet distance on a small classifier's features
(:mod:`otkit.flows.digits`) and its confidence. Path straightness is measured at the
largest NFE.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.velocity import VelocityConvNet, VelocityMLP
from ..semidiscrete.solver import semidiscrete
from ..stats import mean_interval
from ..validation import check_choice, check_count, renamed_keyword
from .couplings import (
    Coupling,
    ExactCoupling,
    IndependentCoupling,
    SemidiscreteCoupling,
    SinkhornCoupling,
    make_coupling,
)
from .distributions import Distribution, Empirical, Sampler, StandardNormal
from .metrics import energy_distance, path_straightness, wasserstein2
from .training import FlowTrainingResult, train_flow

__all__ = [
    "FLOW_BENCHMARKS", "FlowBenchmark", "flow_benchmark", "coupling_label", "evaluate_flow",
    "run_flow_study", "best_settings", "versus_independent", "sharpness_grid",
    "semidiscrete_coupling", "seed_values", "mean_over_seeds", "w2_noise_floor",
]

FLOW_BENCHMARKS = ("moons", "checkerboard", "digits")


@dataclass(frozen=True)
class FlowBenchmark:
    """A source and target law, a held-out reference sample and the network to fit.

    Attributes:
        name: one of :data:`FLOW_BENCHMARKS`.
        source, target: the laws (callables ``(n, generator) -> [n, d]``).
        reference: held-out target points ``[m, d]`` the samples are scored against.
        dim: the dimension d.
    """

    name: str
    source: Distribution
    target: Distribution
    reference: torch.Tensor
    dim: int

    def make_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialized velocity network (seeded): an MLP in 2-D, a conv net for digits."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if self.name == "digits":
                return VelocityConvNet(side=8, channels=32, depth=4)
            return VelocityMLP(self.dim, hidden=128, depth=3)


def flow_benchmark(
    name: str, *, reference_size: int = 1000, train_size: int | None = None, seed: int = 0
) -> FlowBenchmark:
    """The benchmark ``name`` (module docstring) with a reference sample of ``reference_size``.

    ``train_size``: make a 2-D target a finite training set of that many points (an
    :class:`Empirical` law), as semidiscrete couplings need; digits always are (1,438 images).
    """
    check_choice("name", name, FLOW_BENCHMARKS)
    reference_size = check_count("reference_size", reference_size)
    gen = torch.Generator().manual_seed(10_000 + seed)  # away from training draws
    if name == "moons":
        source, target = Sampler("eight_gaussians"), Sampler("moons")
    elif name == "checkerboard":
        source, target = Sampler("gaussian"), Sampler("checkerboard")
    else:  # "digits"
        from ..data.samplers import digits

        train = digits(split="train", seed=seed)
        test = digits(split="test", seed=seed)
        source, target = StandardNormal(64), Empirical(train)
        return FlowBenchmark(name, source, target, test[:reference_size], 64)
    reference = target(reference_size, gen)
    if train_size is not None:
        target = Empirical(target(check_count("train_size", train_size), torch.Generator().manual_seed(seed)))
    return FlowBenchmark(name, source, target, reference, 2)


def semidiscrete_coupling(
    benchmark: FlowBenchmark,
    *,
    epsilon: float = 0.0,
    steps: int = 5000,
    batch_size: int = 256,
    optimizer: str = "sgd",
    lr: float = 0.02,
    ema: float = 0.99,
    tol: float | None = None,
    chi2_batches: int = 4,
    seed: int = 0,
    progress: bool = False,
    num_iterations: int | None = None,
) -> SemidiscreteCoupling:
    """Fit the semidiscrete potential from the benchmark's source to its finite target set and
    return the SD-FM coupling (the fit is ``coupling.fit``, its χ² history included).

    At most ``steps`` SGD steps of :func:`~otkit.semidiscrete.semidiscrete` (χ² of the EMA
    potential checked every ``steps // 10`` on ``chi2_batches`` batches; with ``tol`` it stops
    once that estimate reaches ``tol``), its source drawn from ``seed``. Re-estimate the χ² of
    the result on fresh batches (``coupling.fit.chi2_error``): a stopping value is biased low. ``num_iterations``: the old name of
    ``steps``, still accepted (keyword only) with a ``DeprecationWarning``.
    """
    steps = renamed_keyword(
        "semidiscrete_coupling", "num_iterations", num_iterations, "steps", steps, 5000
    )
    if not isinstance(benchmark.target, Empirical):
        raise ValueError(  # noqa: TRY004 - a benchmark built without train_size, not a bad type
            "semidiscrete couplings need a finite target: build the benchmark with train_size="
        )
    fit = semidiscrete(
        benchmark.source, benchmark.target.data, epsilon=epsilon, steps=steps,
        batch_size=batch_size, optimizer=optimizer, lr=lr, ema=ema, tol=tol,
        chi2_batches=chi2_batches, generator=seed, progress=progress,
        check_every=max(1, steps // 10),
    )
    return SemidiscreteCoupling(fit)


def coupling_label(coupling: Coupling) -> str:
    """A short label: ``"independent"``, ``"exact"`` or ``"sinkhorn ε̃=0.01"``."""
    if isinstance(coupling, SinkhornCoupling):
        if coupling.epsilon is not None:
            return f"sinkhorn ε={coupling.epsilon:g}"
        return f"sinkhorn ε̃={coupling.relative_epsilon:g}"
    return coupling.name


def _settings(
    couplings: Iterable[str | float | Coupling], sizes: Sequence[int], batch_size: int
) -> list[tuple[Coupling, int]]:
    """(coupling, n) pairs; the independent coupling is the same at every n, so runs once."""
    out = []
    for spec in couplings:
        coupling = make_coupling(spec)
        if isinstance(coupling, (IndependentCoupling, SemidiscreteCoupling)):
            out.append((coupling, batch_size))  # pairs that do not depend on n
        else:
            out.extend((coupling, check_count("sizes", n, minimum=2)) for n in sizes)
    return out


def evaluate_flow(
    result: FlowTrainingResult,
    benchmark: FlowBenchmark,
    *,
    nfes: Sequence[int] = (1, 2, 4, 8, 16),
    num_samples: int = 1000,
    scorer=None,
    seed: int = 0,
) -> list[dict]:
    """Score the EMA flow's samples at each NFE (Euler): one dict per NFE.

    2-D: ``w2`` (exact, against ``benchmark.reference``) and ``energy``; digits (with a
    :class:`~otkit.flows.digits.DigitsScorer`): ``frechet`` and ``confidence``. Straightness
    (Liu et al. 2023) of the paths at the largest NFE is in every row.
    """
    gen = torch.Generator().manual_seed(20_000 + seed)
    x0 = benchmark.source(check_count("num_samples", num_samples), gen)
    _, path = result.sample(x0, nfe=max(nfes), return_path=True)
    straightness = path_straightness(path.flatten(2))
    rows = []
    for nfe in nfes:
        x1 = result.sample(x0, nfe=nfe).cpu()
        row = {"nfe": nfe}
        if scorer is not None:
            scores = scorer.score(x1.clamp(-1, 1))
            row.update(frechet=scores.frechet, confidence=scores.confidence)
        else:
            row.update(w2=wasserstein2(x1, benchmark.reference), energy=energy_distance(x1, benchmark.reference))
        row["straightness"] = straightness
        rows.append(row)
    return rows


def run_flow_study(
    benchmark: FlowBenchmark,
    couplings: Iterable[str | float | Coupling],
    sizes: Sequence[int],
    *,
    nfes: Sequence[int] = (1, 2, 4, 8, 16),
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    num_samples: int = 1000,
    scorer=None,
    progress: bool = False,
    return_results: bool = False,
) -> list[dict] | tuple[list[dict], dict[tuple[str, int], FlowTrainingResult]]:
    """Train one flow per (coupling, n) at equal budget and score it at every NFE.

    Args:
        benchmark: from :func:`flow_benchmark`.
        couplings: ``"independent"``, ``"exact"``, relative ε values or couplings.
        sizes: coupling sizes n (points per side of each coupled batch; ≥ ``batch_size``).
        nfes: inference budgets to score (Euler steps).
        steps, batch_size, lr: the training budget, equal for every run.
        seed: model initialization, data, pairing and evaluation seeds.
        num_samples: generated samples scored per NFE.
        scorer: a :class:`~otkit.flows.digits.DigitsScorer` for the digits benchmark.
        return_results: also return the trained flows, keyed by ``(coupling label, n)``.

    Returns:
        dict rows with ``benchmark, coupling, relative_epsilon, n, renormalized_entropy,
        pairing_seconds, training_seconds, final_loss, seed, nfe`` and the metrics.
    """
    if benchmark.name == "digits" and scorer is None:
        raise ValueError("the digits benchmark needs scorer= (otkit.flows.digits.train_digits_classifier())")
    rows, results = [], {}
    for coupling, n in _settings(couplings, sizes, batch_size):
        result = train_flow(
            benchmark.make_model(seed), benchmark.source, benchmark.target, coupling=coupling,
            steps=steps, batch_size=batch_size, coupling_size=n, lr=lr, seed=seed,
            progress=progress,
        )
        rel = coupling.relative_epsilon if isinstance(coupling, SinkhornCoupling) else math.nan
        if isinstance(coupling, SemidiscreteCoupling):
            rel = math.nan
        if isinstance(coupling, ExactCoupling):
            rel = 0.0
        common = {
            "benchmark": benchmark.name, "coupling": coupling_label(coupling),
            "relative_epsilon": rel if rel is not None else math.nan, "n": n,
            "renormalized_entropy": result.renormalized_entropies.mean().item(),
            "pairing_seconds": result.pairing_seconds,
            "training_seconds": result.training_seconds,
            "final_loss": result.losses[-max(1, steps // 10):].mean().item(),
            "seed": seed,
        }
        results[(common["coupling"], n)] = result
        for row in evaluate_flow(result, benchmark, nfes=nfes, num_samples=num_samples, scorer=scorer, seed=seed):
            rows.append({**common, **row})
    return (rows, results) if return_results else rows


def best_settings(rows: Sequence[dict], metric: str) -> list[dict]:
    """Per NFE, the row with the lowest ``metric`` (e.g. ``"w2"`` or ``"frechet"``)."""
    best: dict[int, dict] = {}
    for row in rows:
        if metric not in row:
            raise ValueError(f"metric {metric!r} is not in the rows (have {sorted(row)})")
        if row["nfe"] not in best or row[metric] < best[row["nfe"]][metric]:
            best[row["nfe"]] = row
    return [best[nfe] for nfe in sorted(best)]


def seed_values(rows: Sequence[dict], metric: str, **setting) -> list[float]:
    """``metric`` of the rows that match ``setting`` (e.g. ``coupling="exact", n=1024, nfe=1``),
    one value per seed in increasing seed order: paired scores for :func:`otkit.stats.compare`.

    Raises ValueError when nothing matches or when a seed appears twice (``setting`` does not
    pin one run per seed)."""
    matching = [r for r in rows if all(r.get(k) == v for k, v in setting.items())]
    if not matching:
        raise ValueError(f"no row matches {setting}")
    seeds = [r.get("seed", 0) for r in matching]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{setting} matches several rows per seed; pin coupling, n, nfe (and benchmark)")
    return [r[metric] for r in sorted(matching, key=lambda r: r.get("seed", 0))]


def mean_over_seeds(rows: Sequence[dict], metric: str, level: float = 0.95) -> list[dict]:
    """One row per (benchmark, coupling, n, NFE): the mean of ``metric`` over seeds with its
    Student t interval (``{metric}_low``, ``{metric}_high``; equal to the mean for one seed),
    the mean renormalized entropy and the number of seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["benchmark"], r["coupling"], r["n"], r["nfe"]), []).append(r)
    out = []
    for (benchmark, coupling, n, nfe), group in groups.items():
        values = [r[metric] for r in group]
        if len(values) > 1:
            interval = mean_interval(values, level)
            low, high = interval.low, interval.high
        else:
            low = high = values[0]
        out.append({
            "benchmark": benchmark, "coupling": coupling, "n": n, "nfe": nfe,
            "renormalized_entropy": sum(r["renormalized_entropy"] for r in group) / len(group),
            metric: sum(values) / len(values), f"{metric}_low": low, f"{metric}_high": high,
            "seeds": len(values),
        })
    return out


def w2_noise_floor(
    benchmark: FlowBenchmark, num_samples: int = 1000, *, draws: int = 5, seed: int = 0
) -> list[float]:
    """W2 of ``draws`` fresh samples of the *target law itself* (``num_samples`` points each)
    to the benchmark's reference: what a perfect sampler scores. W2 gaps between flows smaller
    than the spread of these values are sampling noise, not findings."""
    if benchmark.name == "digits":
        raise ValueError("the W2 noise floor is for 2-D benchmarks (digits are scored by Fréchet)")
    gen = torch.Generator().manual_seed(30_000 + seed)
    check_count("draws", draws)
    return [wasserstein2(benchmark.target(check_count("num_samples", num_samples), gen),
                         benchmark.reference) for _ in range(draws)]


def versus_independent(rows: Sequence[dict], metric: str) -> list[dict]:
    """Each run's ``metric`` over independent FM's at the same NFE (< 1: better than I-FM)."""
    baseline = {r["nfe"]: r[metric] for r in rows if r["coupling"] == "independent"}
    if not baseline:
        raise ValueError("the rows hold no independent-coupling run to compare with")
    return [
        {
            "coupling": r["coupling"], "n": r["n"], "nfe": r["nfe"],
            "renormalized_entropy": r["renormalized_entropy"],
            f"{metric}_ratio": r[metric] / baseline[r["nfe"]],
        }
        for r in rows
        if r["coupling"] != "independent"
    ]


def sharpness_grid(
    benchmark: FlowBenchmark,
    relative_epsilons: Sequence[float],
    sizes: Sequence[int],
    *,
    seed: int = 0,
) -> list[dict]:
    """Renormalized entropy and pairing cost of one coupled batch per (relative ε, n).

    The scale-free sharpness of Zhang et al. (2025): the same relative ε gives a blurrier
    plan at larger n (more neighbours within reach of ε), so ε must fall as n grows to keep
    the pairs sharp.
    """
    rows = []
    for n in sizes:
        gen = torch.Generator().manual_seed(seed)
        x0, x1 = benchmark.source(check_count("sizes", n, minimum=2), gen), benchmark.target(n, gen)
        for rel in relative_epsilons:
            pairing = SinkhornCoupling(relative_epsilon=rel).pair(x0, x1, generator=gen)
            rows.append({
                "n": n, "relative_epsilon": rel,
                "renormalized_entropy": pairing.renormalized_entropy,
                "n_iter": pairing.n_iter, "seconds": pairing.seconds,
                "converged": pairing.converged,
            })
    return rows
