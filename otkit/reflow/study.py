"""The experiments of notebook 11: Simple ReFlow's ablation on 2-D flows, and ReFlow against
OT couplings at equal training budget.

Benchmark: 8 Gaussians → two moons (:func:`otkit.flows.study.flow_benchmark`). Per seed:

1. **teacher** — independent flow matching (I-FM, :func:`otkit.flows.train_flow` with the
   independent coupling) for ``teacher_steps`` SGD steps;
2. **pairs** — ``num_pairs`` teacher pairs (:func:`otkit.reflow.pairs.teacher_pairs`, midpoint
   sampler at ``pair_nfe``): all backward, and a second pool with half of them forward;
3. **students** — one ReFlow run per :class:`ReflowConfig` of the ablation, each started from
   the teacher's (EMA) weights, as ReFlow fine-tunes its teacher, and trained
   ``student_steps`` steps on the pairs (:func:`otkit.flows.paired.train_on_pairs`) with the
   techniques it switches on:

   * ``normalization``: w = 1/(sg[ℓ] + δ) per pair (:mod:`otkit.flows.weighting`);
   * ``time``: t drawn with density ∝ 10^(1 − t), more draws near the noise
     (:class:`otkit.flows.time_samplers.ExponentialTime`; the paper's 10^τ in its own time);
   * ``forward``: half the pairs forward (real data → reversed teacher → noise);

4. **equal-budget baselines** (the comparison the paper does not make) — fresh flows trained
   for ``teacher_steps + student_steps`` SGD steps, as many as teacher and student together:
   I-FM, Sinkhorn OT-FM (:class:`otkit.flows.SinkhornCoupling`, relative ε = 0.01 on batches
   of ``sinkhorn_size``) and SD-FM (:func:`otkit.flows.study.semidiscrete_coupling` on a
   training set of ``sd_train_size`` moons points, its potential fitted by SGD (learning rate
   ``sd_lr``, EMA 0.999) until its χ² reaches ``sd_tol`` or ``sd_steps`` steps, notebook 03's
   recipe; those steps are counted apart, in ``sd_potential_steps``). The budget counts SGD steps of the velocity network; the
   teacher's pair simulation (``num_pairs · pair_nfe`` evaluations, no gradient) is recorded
   in ``teacher_evaluations`` but not converted into steps.

Every flow is scored by :func:`otkit.flows.study.evaluate_flow` (Euler at each NFE; exact W2
to a held-out reference, energy distance, straightness of the paths at the largest NFE). Rows
are dicts with ``method, kind, seed, nfe, w2, energy, straightness, sgd_steps,
teacher_evaluations, seconds``. :func:`compare_methods` gives paired lower / higher / tie
verdicts over seeds (:func:`otkit.stats.compare`); :func:`read_study` turns a study's rows
into the findings of notebook 11.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..flows.couplings import SinkhornCoupling
from ..flows.paired import train_on_pairs
from ..flows.study import (
    FlowBenchmark,
    evaluate_flow,
    flow_benchmark,
    seed_values,
    semidiscrete_coupling,
)
from ..flows.training import FlowTrainingResult, train_flow
from ..stats import Comparison, compare
from ..validation import check_count, check_probability
from .pairs import TeacherPairs, teacher_pairs

__all__ = [
    "TECHNIQUES", "ReflowConfig", "ABLATION", "LADDER", "BASELINES", "train_teacher",
    "make_pairs", "train_student", "reflow_study", "compare_methods", "read_study",
    "StudyReading",
]

#: The techniques a :class:`ReflowConfig` switches on.
TECHNIQUES = ("normalization", "time", "forward")
#: The equal-budget baselines :func:`reflow_study` can train.
BASELINES = ("independent", "sinkhorn", "semidiscrete")


@dataclass(frozen=True)
class ReflowConfig:
    """Which of Simple ReFlow's techniques a student uses (module docstring)."""

    normalization: bool = False
    time: bool = False
    forward: bool = False

    @property
    def label(self) -> str:
        """``"baseline"``, ``"all"`` or ``"+normalization+time"``-like."""
        on = [name for name in TECHNIQUES if getattr(self, name)]
        if not on:
            return "baseline"
        if len(on) == len(TECHNIQUES):
            return "all"
        return "".join(f"+{name}" for name in on)

    @classmethod
    def from_label(cls, label: str) -> ReflowConfig:
        """The inverse of :attr:`label`."""
        if label == "baseline":
            return cls()
        if label == "all":
            return cls(True, True, True)
        names = [part for part in label.split("+") if part]
        if not label.startswith("+") or not names or any(n not in TECHNIQUES for n in names):
            raise ValueError(f"configs: unknown ReFlow configuration {label!r}; use 'baseline', "
                             f"'all' or '+' joined names of {TECHNIQUES}")
        return cls(**{name: True for name in names})


#: Baseline ReFlow, each technique alone, and all of them.
ABLATION = ("baseline", "+normalization", "+time", "+forward", "all")
#: The cumulative ladder, in the paper's order (training dynamics first, then the pairs).
LADDER = ("baseline", "+normalization", "+normalization+time", "all")


def train_teacher(
    benchmark: FlowBenchmark, *, steps: int = 2000, batch_size: int = 256, lr: float = 2e-3,
    seed: int = 0,
) -> FlowTrainingResult:
    """I-FM on the benchmark: the teacher (``benchmark.make_model(seed)``, independent pairs)."""
    return train_flow(benchmark.make_model(seed), benchmark.source, benchmark.target,
                      coupling="independent", steps=steps, batch_size=batch_size, lr=lr, seed=seed)


def make_pairs(
    teacher: FlowTrainingResult, benchmark: FlowBenchmark, *, num_pairs: int = 8192,
    forward_fraction: float = 0.0, pair_nfe: int = 64, seed: int = 0,
) -> TeacherPairs:
    """The teacher's pairs (:func:`otkit.reflow.pairs.teacher_pairs`, midpoint at ``pair_nfe``)."""
    return teacher_pairs(teacher, benchmark.source, benchmark.target, num_pairs,
                         forward_fraction=forward_fraction, nfe=pair_nfe, method="midpoint",
                         seed=50_000 + seed)


def train_student(
    teacher: FlowTrainingResult, pairs: TeacherPairs, config: ReflowConfig, *,
    steps: int = 1000, batch_size: int = 256, lr: float = 2e-3, seed: int = 0,
) -> FlowTrainingResult:
    """ReFlow: the teacher's EMA weights fine-tuned on ``pairs`` with ``config``'s techniques
    (``pairs`` must already hold the forward pairs if ``config.forward``)."""
    if not isinstance(config, ReflowConfig):
        raise TypeError(f"config must be a ReflowConfig, got {type(config).__name__}")
    if config.forward != bool(pairs.forward.any()):
        raise ValueError(f"config.forward is {config.forward} but the pairs hold "
                         f"{int(pairs.forward.sum())} forward pairs")
    model = copy.deepcopy(teacher.ema_model).train().requires_grad_(True)
    return train_on_pairs(
        model, pairs.source, pairs.target, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
        time_sampler="noise" if config.time else "uniform",
        loss_weighting="normalized" if config.normalization else "none",
    )


def reflow_study(
    *,
    seeds: Sequence[int] = (0, 1, 2),
    configs: Sequence[str] = ABLATION,
    baselines: Sequence[str] = BASELINES,
    nfes: Sequence[int] = (1, 2, 4, 16),
    teacher_steps: int = 2000,
    student_steps: int = 1000,
    batch_size: int = 256,
    lr: float = 2e-3,
    num_pairs: int = 8192,
    pair_nfe: int = 64,
    forward_fraction: float = 0.5,
    sinkhorn_size: int = 512,
    sd_train_size: int = 1024,
    sd_steps: int = 10_000,
    sd_lr: float = 0.1,
    sd_tol: float = 0.02,
    num_samples: int = 1000,
    return_results: bool = False,
) -> list[dict] | tuple[list[dict], dict]:
    """Run the study of the module docstring; one row per (method, seed, NFE).

    ``configs``: labels of :class:`ReflowConfig` (e.g. :data:`ABLATION`, :data:`LADDER`);
    ``baselines``: a subset of :data:`BASELINES`. ``return_results`` also returns the trained
    flows keyed by ``(method, seed)`` and the pairs keyed by ``(forward?, seed)``.
    """
    seeds = [check_count("seeds", s, minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty")
    parsed = [ReflowConfig.from_label(c) for c in configs]
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"baselines: unknown {b!r}, choose from {BASELINES}")
    nfes = [check_count("nfes", n) for n in nfes]
    teacher_steps, student_steps = check_count("teacher_steps", teacher_steps), check_count("student_steps", student_steps)
    forward_fraction = check_probability("forward_fraction", forward_fraction, closed=True)
    total = teacher_steps + student_steps
    rows: list[dict] = []
    results: dict = {}

    def record(method: str, kind: str, result: FlowTrainingResult, seed: int, benchmark, *,
               sgd_steps: int, teacher_evaluations: int = 0, seconds: float) -> None:
        results[(method, seed)] = result
        for row in evaluate_flow(result, benchmark, nfes=nfes, num_samples=num_samples, seed=seed):
            rows.append({"method": method, "kind": kind, "seed": seed, **row,
                         "sgd_steps": sgd_steps, "teacher_evaluations": teacher_evaluations,
                         "seconds": seconds})

    for seed in seeds:
        bench = flow_benchmark("moons", reference_size=num_samples, seed=seed)
        start = time.perf_counter()
        teacher = train_teacher(bench, steps=teacher_steps, batch_size=batch_size, lr=lr, seed=seed)
        teacher_seconds = time.perf_counter() - start
        record("teacher", "teacher", teacher, seed, bench, sgd_steps=teacher_steps, seconds=teacher_seconds)
        pools: dict[bool, TeacherPairs] = {}
        for config in parsed:
            if config.forward not in pools:
                pools[config.forward] = make_pairs(
                    teacher, bench, num_pairs=num_pairs, pair_nfe=pair_nfe, seed=seed,
                    forward_fraction=forward_fraction if config.forward else 0.0)
                results[("pairs", config.forward, seed)] = pools[config.forward]
            pairs = pools[config.forward]
            start = time.perf_counter()
            student = train_student(teacher, pairs, config, steps=student_steps,
                                    batch_size=batch_size, lr=lr, seed=seed)
            seconds = teacher_seconds + pairs.seconds + time.perf_counter() - start
            record(config.label, "reflow", student, seed, bench, sgd_steps=total,
                   teacher_evaluations=pairs.function_evaluations, seconds=seconds)
        for name in baselines:
            start = time.perf_counter()
            if name == "semidiscrete":
                sd_bench = flow_benchmark("moons", reference_size=num_samples, seed=seed,
                                          train_size=sd_train_size)
                coupling = semidiscrete_coupling(sd_bench, steps=sd_steps, lr=sd_lr, ema=0.999,
                                                 tol=sd_tol, chi2_batches=16, seed=seed)
                result = train_flow(sd_bench.make_model(seed), sd_bench.source, sd_bench.target,
                                    coupling=coupling, steps=total, batch_size=batch_size, lr=lr, seed=seed)
                record("SD-FM", "sd-fm", result, seed, sd_bench, sgd_steps=total,
                       seconds=time.perf_counter() - start)
                chi2 = coupling.fit.chi2_error(sd_bench.source, num_batches=16,
                                               generator=torch.Generator().manual_seed(99))
                for row in rows[-len(nfes):]:
                    row["sd_potential_steps"] = int(coupling.fit.n_iter)
                    row["sd_chi2"] = float(chi2)
            elif name == "sinkhorn":
                result = train_flow(bench.make_model(seed), bench.source, bench.target,
                                    coupling=SinkhornCoupling(relative_epsilon=0.01, track_entropy=False),
                                    coupling_size=sinkhorn_size, steps=total, batch_size=batch_size,
                                    lr=lr, seed=seed)
                record("OT-FM", "ot-fm", result, seed, bench, sgd_steps=total,
                       seconds=time.perf_counter() - start)
            else:
                result = train_flow(bench.make_model(seed), bench.source, bench.target,
                                    coupling="independent", steps=total, batch_size=batch_size,
                                    lr=lr, seed=seed)
                record("I-FM", "i-fm", result, seed, bench, sgd_steps=total,
                       seconds=time.perf_counter() - start)
    return (rows, results) if return_results else rows


def compare_methods(rows: Sequence[dict], a: str, b: str, nfe: int, metric: str = "w2") -> Comparison:
    """Paired comparison over seeds of ``metric`` at ``nfe``: method ``a`` against ``b``
    (verdict ``"lower"``: a has the lower score; needs ≥ 2 seeds)."""
    return compare(seed_values(rows, metric, method=a, nfe=nfe),
                   seed_values(rows, metric, method=b, nfe=nfe))


def _methods(rows: Sequence[dict]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r["method"] not in seen:
            seen.append(r["method"])
    return seen


def _mean(rows: Sequence[dict], method: str, nfe: int, metric: str = "w2") -> float:
    values = [r[metric] for r in rows if r["method"] == method and r["nfe"] == nfe]
    if not values:
        raise ValueError(f"no row for method={method!r} at nfe={nfe}")
    return sum(values) / len(values)


@dataclass(frozen=True)
class StudyReading:
    """The findings of a :func:`reflow_study` run (notebook 11), from paired verdicts over seeds.

    Attributes:
        nfes: the NFEs scored; ``small``: those ≤ 4, ``large``: the largest.
        mean_w2: ``{(method, nfe): mean W2 over seeds}``.
        verdicts: ``{(a, b, nfe): Comparison}`` for a against b; ``"lower"``: a has lower W2.
        beats_teacher: ``{nfe: verdict}`` of baseline ReFlow against its teacher.
        ladder_steps: ``[(from, to, nfe, verdict)]`` for every step of the ladder that was run
            (baseline → +technique → all, and :data:`LADDER`'s cumulative steps).
        monotone: no ladder step has verdict ``"higher"`` (worse) at any NFE.
        forward_helps: ``{nfe: verdict}`` of +forward against baseline.
        lines: the reading, one sentence per finding.
    """

    nfes: tuple[int, ...]
    mean_w2: dict
    verdicts: dict
    beats_teacher: dict
    ladder_steps: list
    monotone: bool
    forward_helps: dict
    lines: list

    @property
    def small(self) -> tuple[int, ...]:
        return tuple(n for n in self.nfes if n <= 4)

    @property
    def large(self) -> int:
        return max(self.nfes)


def _verdict_word(verdict: str) -> str:
    return {"lower": "better", "higher": "worse", "tie": "tied"}[verdict]


def read_study(rows: Sequence[dict]) -> StudyReading:
    """Paired verdicts (:func:`otkit.stats.compare`, 95% t interval of the W2 differences over
    seeds) for the claims of Simple ReFlow checked in notebook 11, and the sentences that say
    them. Needs ≥ 2 seeds, the teacher and the ``baseline`` ReFlow run."""
    methods = _methods(rows)
    for needed in ("teacher", "baseline"):
        if needed not in methods:
            raise ValueError(f"rows: no {needed!r} runs; run reflow_study with it")
    nfes = tuple(sorted({r["nfe"] for r in rows}))
    mean_w2 = {(m, n): _mean(rows, m, n) for m in methods for n in nfes}
    verdicts: dict = {}

    def cmp(a: str, b: str, nfe: int) -> str:
        if (a, b, nfe) not in verdicts:
            verdicts[(a, b, nfe)] = compare_methods(rows, a, b, nfe)
        return verdicts[(a, b, nfe)].verdict

    def ratio(a: str, b: str, nfe: int) -> float:
        return mean_w2[(a, nfe)] / mean_w2[(b, nfe)]

    lines = []
    beats = {n: cmp("baseline", "teacher", n) for n in nfes}
    for n in nfes:
        lines.append(
            f"NFE {n}: ReFlow (baseline) vs its teacher: {_verdict_word(beats[n])} "
            f"(W2 {mean_w2[('baseline', n)]:.3f} vs {mean_w2[('teacher', n)]:.3f}, "
            f"ratio {ratio('baseline', 'teacher', n):.2f})."
        )
    small = [n for n in nfes if n <= 4]
    wins_small = all(beats[n] == "lower" for n in small)
    loses_large = beats[max(nfes)] == "higher"
    lines.append(
        "Claim 'ReFlow beats the teacher at NFE ≤ 4': "
        + ("reproduced." if wins_small else "not reproduced at NFE "
           + ", ".join(str(n) for n in small if beats[n] != "lower") + ".")
        + f" Claim 'and loses at large NFE' (NFE {max(nfes)}): "
        + ("reproduced." if loses_large else f"not reproduced (a {beats[max(nfes)]} for ReFlow; "
           "'lower' means ReFlow is better).")
    )
    steps: list = []
    singles = [f"+{t}" for t in TECHNIQUES if f"+{t}" in methods]
    for single in singles:
        steps += [("baseline", single)] + ([(single, "all")] if "all" in methods else [])
    chain = [m for m in LADDER if m in methods]
    if chain == list(LADDER):
        steps += [p for p in zip(chain, chain[1:]) if p not in steps]
    ladder = [(a, b, n, cmp(b, a, n)) for a, b in steps for n in nfes]
    monotone = all(v != "higher" for *_, v in ladder)
    worse = [f"{a} → {b} at NFE {n} (W2 ×{ratio(b, a, n):.2f})" for a, b, n, v in ladder if v == "higher"]
    better = [f"{a} → {b} at NFE {n} (×{ratio(b, a, n):.2f})" for a, b, n, v in ladder if v == "lower"]
    lines.append(
        "Claim 'the ladder is monotone within noise': "
        + ("reproduced: no step makes W2 worse beyond seed noise" if monotone
           else "not reproduced: worse at " + "; ".join(worse))
        + (". Steps that help beyond noise: " + "; ".join(better) + "." if better
           else ". No step helps beyond seed noise.")
    )
    forward = {}
    if "+forward" in methods:
        forward = {n: cmp("+forward", "baseline", n) for n in nfes}
        helped = [n for n in nfes if forward[n] == "lower"]
        hurt = [n for n in nfes if forward[n] == "higher"]
        lines.append(
            "Claim 'forward pairs help' (+forward vs baseline): "
            + ("reproduced at NFE " + ", ".join(map(str, helped)) if helped else "not reproduced")
            + ("; worse at NFE " + ", ".join(map(str, hurt)) if hurt else "")
            + "; ratios " + ", ".join(f"{ratio('+forward', 'baseline', n):.2f}" for n in nfes)
            + f" at NFE {', '.join(map(str, nfes))}."
        )
    for other in ("OT-FM", "SD-FM", "I-FM"):
        if other not in methods:
            continue
        for mine in ("baseline", "all"):
            if mine not in methods:
                continue
            words = [f"NFE {n}: {_verdict_word(cmp(mine, other, n))} (×{ratio(mine, other, n):.2f})"
                     for n in nfes]
            lines.append(f"Equal budget, ReFlow ({mine}) vs {other}: " + "; ".join(words) + ".")
    return StudyReading(nfes, mean_w2, verdicts, beats, ladder, monotone, forward, lines)
