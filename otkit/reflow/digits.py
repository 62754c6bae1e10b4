"""Simple ReFlow on class-conditional 8×8 digits (notebook 11's second section).

Kim, Hsieh, Klein, Cuturi, Ye, Kawar and Thornton (2025, "Simple ReFlow", ICLR 2025) report
that a ReFlow student beats its teacher at few function evaluations (NFE) and that their
techniques keep it close at many. Here, on scikit-learn's 8×8 digits (the classifier's
training split, :func:`otkit.data.digits`), per seed:

1. **teacher** — class-conditional independent flow matching (I-FM):
   :class:`otkit.nn.velocity.VelocityConvNet` with ``num_classes=10``, trained by
   :func:`otkit.flows.train_flow` with label dropout ``label_dropout`` (classifier-free
   guidance, :mod:`otkit.flows.guidance`), ``teacher_steps`` SGD steps;
2. **pairs** — ``num_pairs`` backward pairs (noise z, class y) → T(z; y): the teacher's guided
   velocity at ``guidance`` w, midpoint at ``pair_nfe`` (:func:`otkit.reflow.pairs.backward_pairs`),
   the classes balanced (y = k mod 10);
3. **student** — the teacher's EMA weights fine-tuned on the labelled pairs
   (:func:`otkit.flows.paired.train_on_pairs`, same label dropout) for ``student_steps``
   steps with Simple ReFlow's training techniques: loss normalization
   (:mod:`otkit.flows.weighting`), the time law ∝ 10^(1 − t)
   (:mod:`otkit.flows.time_samplers`) and the HPF distance (:mod:`otkit.flows.hpf`);
   ``students`` may add ``"baseline"`` (plain ReFlow: L2, U[0, 1], no weighting).

Scores (:func:`score_conditional`): ``num_samples`` conditional samples (classes k mod 10),
Euler at each NFE with guidance w, clipped to [-1, 1]: the Fréchet distance on the digits
classifier's features (:class:`otkit.flows.digits.DigitsScorer`), the classifier's accuracy on
the requested classes, and the straightness of the paths at the largest NFE.
:func:`read_digits_study` gives paired verdicts over seeds (:func:`otkit.stats.compare`) and
the sentences of the notebook.

Left out: forward and projected pairs (the 2-D section has forward pairs), dropout.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..flows.digits import DigitsScorer, train_digits_classifier
from ..flows.distributions import StandardNormal
from ..flows.guidance import GuidedVelocity, LabeledEmpirical
from ..flows.metrics import path_straightness
from ..flows.paired import train_on_pairs
from ..flows.study import seed_values
from ..flows.training import FlowTrainingResult, train_flow
from ..nn.ode import integrate
from ..nn.velocity import VelocityConvNet
from ..stats import Comparison, compare
from ..validation import check_count, check_probability
from .pairs import backward_pairs

__all__ = [
    "DIGITS_STUDENTS", "digits_teacher", "digits_pairs", "digits_student", "score_conditional",
    "digits_reflow_study", "read_digits_study", "DigitsReading",
]

#: Students :func:`digits_reflow_study` can train: Simple ReFlow's techniques, or plain ReFlow.
DIGITS_STUDENTS = ("simple", "baseline")
_NUM_CLASSES = 10


def _model(seed: int, channels: int, depth: int) -> VelocityConvNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VelocityConvNet(side=8, channels=channels, depth=depth, num_classes=_NUM_CLASSES)


def digits_teacher(
    data: LabeledEmpirical, *, steps: int = 3000, batch_size: int = 128, lr: float = 2e-3,
    channels: int = 32, depth: int = 4, label_dropout: float = 0.2, seed: int = 0,
) -> FlowTrainingResult:
    """The class-conditional I-FM teacher (module docstring, step 1)."""
    return train_flow(_model(seed, channels, depth), StandardNormal(64), data, coupling="independent",
                      steps=steps, batch_size=batch_size, lr=lr, seed=seed, label_dropout=label_dropout)


def digits_pairs(
    teacher: FlowTrainingResult, num_pairs: int, *, pair_nfe: int = 32, guidance: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(noise [N, 64], T(noise; y) [N, 64], y [N])``: backward pairs of the guided teacher."""
    num_pairs = check_count("num_pairs", num_pairs)
    gen = torch.Generator().manual_seed(50_000 + seed)
    noise = torch.randn(num_pairs, 64, generator=gen)
    labels = torch.arange(num_pairs) % _NUM_CLASSES
    field = GuidedVelocity(teacher.ema_model, labels, guidance)
    z, x = backward_pairs(field, noise, nfe=pair_nfe, method="midpoint")
    return z, x, labels


def digits_student(
    teacher: FlowTrainingResult, pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *,
    kind: str = "simple", steps: int = 1500, batch_size: int = 128, lr: float = 2e-3,
    label_dropout: float = 0.2, seed: int = 0,
) -> FlowTrainingResult:
    """ReFlow from the teacher's EMA weights on labelled ``pairs`` (module docstring, step 3)."""
    if kind not in DIGITS_STUDENTS:
        raise ValueError(f"kind must be one of {DIGITS_STUDENTS}, got {kind!r}")
    z, x, labels = pairs
    simple = kind == "simple"
    model = copy.deepcopy(teacher.ema_model).train().requires_grad_(True)
    return train_on_pairs(
        model, z, x, labels=labels, label_dropout=label_dropout, steps=steps,
        batch_size=batch_size, lr=lr, seed=seed,
        time_sampler="noise" if simple else "uniform",
        loss_weighting="normalized" if simple else "none",
        loss_distance="hpf" if simple else "l2",
    )


def score_conditional(
    result: FlowTrainingResult, scorer: DigitsScorer, *, nfes: Sequence[int] = (1, 2, 4, 9, 50),
    num_samples: int = 1000, guidance: float = 0.0, seed: int = 0,
) -> list[dict]:
    """One dict per NFE: ``nfe, frechet, accuracy, confidence, straightness`` of conditional
    samples (classes k mod 10, Euler, guidance w; module docstring)."""
    num_samples = check_count("num_samples", num_samples)
    nfes = [check_count("nfes", n) for n in nfes]
    gen = torch.Generator().manual_seed(20_000 + seed)
    x0 = torch.randn(num_samples, 64, generator=gen)
    labels = torch.arange(num_samples) % _NUM_CLASSES
    field = GuidedVelocity(result.ema_model, labels, guidance)
    _, path = integrate(field, x0, nfe=max(nfes), return_path=True)
    straightness = path_straightness(path.flatten(2))
    rows = []
    for nfe in nfes:
        x1 = integrate(field, x0, nfe=nfe).clamp(-1, 1)
        scores = scorer.score(x1)
        rows.append({
            "nfe": nfe, "frechet": scores.frechet, "confidence": scores.confidence,
            "accuracy": float((scores.predictions == labels).double().mean()),
            "straightness": straightness,
        })
    return rows


def digits_reflow_study(
    *,
    seeds: Sequence[int] = (0, 1, 2),
    nfes: Sequence[int] = (1, 2, 4, 9, 50),
    students: Sequence[str] = ("simple",),
    teacher_steps: int = 3000,
    student_steps: int = 1500,
    batch_size: int = 128,
    lr: float = 2e-3,
    channels: int = 32,
    depth: int = 4,
    num_pairs: int = 8192,
    pair_nfe: int = 32,
    label_dropout: float = 0.2,
    guidance: float = 0.0,
    num_samples: int = 1000,
    classifier_epochs: int = 20,
    scorer: DigitsScorer | None = None,
    return_results: bool = False,
) -> list[dict] | tuple[list[dict], dict]:
    """Run the study of the module docstring; one row per (method, seed, NFE) with ``method``
    (``"teacher"`` or a student), ``seed``, ``nfe``, ``frechet``, ``accuracy``, ``confidence``,
    ``straightness``, ``sgd_steps``, ``teacher_evaluations`` and ``seconds``. With
    ``guidance`` ≠ 0 the teacher is also scored unguided (w = 0) at the largest NFE, as
    method ``"teacher w=0"``.

    ``scorer``: a :class:`~otkit.flows.digits.DigitsScorer` (default: trained here with
    ``classifier_epochs`` epochs, seed 0; the flows train on its training split).
    ``return_results`` also returns the flows keyed by ``(method, seed)`` and the scorer
    under ``"scorer"``.
    """
    from ..data.samplers import digits

    seeds = [check_count("seeds", s, minimum=0) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty")
    students = list(students)
    for s in students:
        if s not in DIGITS_STUDENTS:
            raise ValueError(f"students: unknown {s!r}, choose from {DIGITS_STUDENTS}")
    nfes = [check_count("nfes", n) for n in nfes]
    teacher_steps = check_count("teacher_steps", teacher_steps)
    student_steps = check_count("student_steps", student_steps)
    label_dropout = check_probability("label_dropout", label_dropout, closed=True)
    if scorer is None:
        scorer = train_digits_classifier(epochs=check_count("classifier_epochs", classifier_epochs), seed=0)
    x, y = digits(split="train", seed=0, return_labels=True)
    data = LabeledEmpirical(x, y)
    rows: list[dict] = []
    results: dict = {"scorer": scorer}

    def record(method: str, result: FlowTrainingResult, seed: int, sgd_steps: int,
               evaluations: int, seconds: float) -> None:
        results[(method, seed)] = result
        for row in score_conditional(result, scorer, nfes=nfes, num_samples=num_samples,
                                     guidance=guidance, seed=seed):
            rows.append({"method": method, "seed": seed, **row, "sgd_steps": sgd_steps,
                         "teacher_evaluations": evaluations, "seconds": seconds})

    for seed in seeds:
        start = time.perf_counter()
        teacher = digits_teacher(data, steps=teacher_steps, batch_size=batch_size, lr=lr,
                                 channels=channels, depth=depth, label_dropout=label_dropout, seed=seed)
        teacher_seconds = time.perf_counter() - start
        record("teacher", teacher, seed, teacher_steps, 0, teacher_seconds)
        if guidance != 0.0:  # what guidance does: the teacher unguided, at the largest NFE
            row = score_conditional(teacher, scorer, nfes=[max(nfes)], num_samples=num_samples,
                                    guidance=0.0, seed=seed)[0]
            rows.append({"method": "teacher w=0", "seed": seed, **row, "sgd_steps": teacher_steps,
                         "teacher_evaluations": 0, "seconds": teacher_seconds})
        start = time.perf_counter()
        pairs = digits_pairs(teacher, num_pairs, pair_nfe=pair_nfe, guidance=guidance, seed=seed)
        pair_seconds = time.perf_counter() - start
        evaluations = num_pairs * pair_nfe * (1 if guidance == 0 else 2)
        for kind in students:
            start = time.perf_counter()
            student = digits_student(teacher, pairs, kind=kind, steps=student_steps,
                                     batch_size=batch_size, lr=lr, label_dropout=label_dropout, seed=seed)
            record(kind, student, seed, teacher_steps + student_steps, evaluations,
                   teacher_seconds + pair_seconds + time.perf_counter() - start)
    return (rows, results) if return_results else rows


@dataclass(frozen=True)
class DigitsReading:
    """The findings of a :func:`digits_reflow_study` run, from paired verdicts over seeds.

    Attributes:
        nfes: the NFEs scored.
        means: ``{(method, nfe, metric): mean over seeds}`` for ``frechet`` and ``accuracy``.
        frechet: ``{(student, nfe): Comparison}`` of the student's Fréchet against the
            teacher's (verdict ``"lower"``: the student is better).
        accuracy: likewise for class accuracy (verdict ``"higher"``: the student is better).
        guidance: the teacher's class accuracy at the largest NFE, guided (w) against
            unguided (w = 0) (verdict ``"higher"``: guidance raises it); ``None`` without
            ``"teacher w=0"`` rows.
        lines: the reading, one sentence per finding.
    """

    nfes: tuple[int, ...]
    means: dict
    frechet: dict
    accuracy: dict
    guidance: Comparison | None
    lines: list


def _better(verdict: str, lower_is_better: bool) -> str:
    if verdict == "tie":
        return "tied"
    return "better" if (verdict == "lower") == lower_is_better else "worse"


def read_digits_study(rows: Sequence[dict], student: str = "simple") -> DigitsReading:
    """Paired verdicts (95% t interval of the differences over seeds) of ``student`` against
    the teacher at every NFE, for the Fréchet distance and the class accuracy, and the
    sentences that state them (Simple ReFlow's claim: better at NFE ≤ 4, not at many)."""
    methods = {r["method"] for r in rows}
    for needed in ("teacher", student):
        if needed not in methods:
            raise ValueError(f"rows: no {needed!r} runs")
    nfes = tuple(sorted({r["nfe"] for r in rows}))
    means = {}
    for m, n in sorted({(r["method"], r["nfe"]) for r in rows}):
        for metric in ("frechet", "accuracy"):
            values = seed_values(rows, metric, method=m, nfe=n)
            means[(m, n, metric)] = sum(values) / len(values)
    frechet: dict[tuple[str, int], Comparison] = {}
    accuracy: dict[tuple[str, int], Comparison] = {}
    lines = []
    for n in nfes:
        f = frechet[(student, n)] = compare(seed_values(rows, "frechet", method=student, nfe=n),
                                            seed_values(rows, "frechet", method="teacher", nfe=n))
        a = accuracy[(student, n)] = compare(seed_values(rows, "accuracy", method=student, nfe=n),
                                             seed_values(rows, "accuracy", method="teacher", nfe=n))
        lines.append(
            f"NFE {n}: ReFlow ({student}) vs its teacher: Fréchet {_better(f.verdict, True)} "
            f"({means[(student, n, 'frechet')]:.2f} vs {means[('teacher', n, 'frechet')]:.2f}, "
            f"95% interval of the difference [{f.difference.low:.2f}, {f.difference.high:.2f}]); "
            f"class accuracy {_better(a.verdict, False)} ({means[(student, n, 'accuracy')]:.3f} vs "
            f"{means[('teacher', n, 'accuracy')]:.3f})."
        )
    small = [n for n in nfes if n <= 4]
    wins = all(frechet[(student, n)].verdict == "lower" for n in small)
    large = max(nfes)
    lost = frechet[(student, large)].verdict == "higher"
    lines.append(
        "Claim 'ReFlow beats the teacher at NFE ≤ 4' (Fréchet): "
        + ("reproduced." if wins else "not reproduced at NFE "
           + ", ".join(str(n) for n in small if frechet[(student, n)].verdict != "lower") + ".")
        + f" Claim 'and loses at large NFE' (NFE {large}): "
        + ("reproduced." if lost else f"not reproduced ({_better(frechet[(student, large)].verdict, True)} "
           "for ReFlow).")
    )
    guided = None
    if "teacher w=0" in methods:
        guided = compare(seed_values(rows, "accuracy", method="teacher", nfe=large),
                         seed_values(rows, "accuracy", method="teacher w=0", nfe=large))
        lines.append(
            f"Classifier-free guidance (teacher, NFE {large}): class accuracy "
            f"{means[('teacher', large, 'accuracy')]:.3f} guided vs "
            f"{means[('teacher w=0', large, 'accuracy')]:.3f} unguided: "
            + {"higher": "guidance raises it", "lower": "guidance lowers it",
               "tie": "tied within seed noise"}[guided.verdict]
            + f"; Fréchet {means[('teacher', large, 'frechet')]:.2f} vs "
            f"{means[('teacher w=0', large, 'frechet')]:.2f}."
        )
    return DigitsReading(nfes, means, frechet, accuracy, guided, lines)
