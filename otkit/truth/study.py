"""The experiments of notebook 13: are truth probes universal across tasks?

Azizian, Kirchhof, Ndiaye, …, Cuturi (2025), "The Geometries of Truth Are Orthogonal Across
Tasks" (arXiv:2506.08572). A linear probe reads, from a model's activations h ∈ ℝ^d at the end
of a prompt, whether the model's answer will be correct:

    p(correct | h) = σ(wᵀh + b),   w fitted by L2-regularized logistic regression
    min_w,b  Σ_i log(1 + exp(−y_i (wᵀh_i + b))) + ‖w‖² / (2C),   y_i ∈ {−1, +1}

The paper's claims, checked here on a small transformer trained from scratch (no pretrained
model can be loaded: :mod:`otkit.nn.transformer`, data :mod:`otkit.data.tasks`):

1. probes work within a task but transfer across tasks near chance (cross-task AUROC ≈ 0.5);
2. probe directions of different tasks are near-orthogonal (|cos(w_i, w_j)| small);
3. activations cluster by task (the task is linearly decodable from h; silhouette > 0).

Pipeline: :func:`train_multitask` trains one model on the five tasks and keeps the checkpoint
whose per-task accuracies sit best inside a band (55–85% by default: both correct and wrong
answers are needed to fit a probe); :func:`answer_correct` scores greedy answers;
:func:`last_prompt_activations` reads the residual stream at the last prompt token through
:func:`otkit.steering.collect_activations` (a mask keeping that one token);
:func:`probe_study` fits one probe per task and layer on half of each task's examples and
fills the in/cross-task AUROC matrix (row: task trained on; column: task tested on, on the
held-out half), the cosine matrix of probe directions (in raw activation coordinates), each
task's split-half self-cosine (how stable one task's direction is) and the random-direction
baseline E|cos| = √(2/(π d)) (to first order; computed by Monte Carlo here), task-ID
decodability and a confidence baseline (AUROC of the answer's softmax probability).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from ..data.tasks import TASKS, TaskData, TaskSpec, make_tasks
from ..nn.trainer import TrainerConfig, TrainResult, train
from ..nn.transformer import Transformer, TransformerConfig
from ..stats import Interval, mean_interval
from ..steering import collect_activations
from ..validation import check_choice, check_count, check_positive

__all__ = [
    "BAND",
    "TRUTH_SPEC",
    "TRUTH_MIX",
    "TRUTH_TRAINER",
    "MultiTaskModel",
    "ProbeStudy",
    "train_multitask",
    "answer_correct",
    "answer_confidence",
    "task_accuracy",
    "last_prompt_activations",
    "PENALTIES",
    "fit_probe",
    "auroc_matrix",
    "probe_study",
    "random_cosine",
    "summarize",
    "read_claims",
    "NEAR_CHANCE",
    "NEAR_ORTHOGONAL",
    "CLUSTERED",
]

#: The accuracy band the multi-task model is trained into (the issue's 55–85%).
BAND = (0.55, 0.85)
#: Task sizes of notebook 13 (harder than :class:`TaskSpec`'s defaults, so that no task is
#: solved long before the others).
TRUTH_SPEC = TaskSpec(modulus=13, compare_max=48, count_length=6, count_symbols=3,
                      reverse_length=6, reverse_symbols=8, n_entities=60, n_relations=3)
#: Training examples per task: the mixture slows the fast learners (comparison, reversal) and
#: feeds the slow ones (counting, addition, facts) so that all reach the band together.
TRUTH_MIX = {"addition": 1500, "comparison": 300, "counting": 2500, "reversal": 120,
             "facts": 1100}
#: The trainer of notebook 13 (about a minute on one CPU core).
TRUTH_TRAINER = TrainerConfig(steps=1500, batch_size=64, lr=2e-3, warmup=50, eval_every=50)


@dataclass(frozen=True)
class MultiTaskModel:
    """A trained multi-task model and the data it is probed on.

    Attributes:
        model: the :class:`Transformer` at the selected checkpoint (eval mode).
        data: the held-out examples (fresh draws) the probes use.
        accuracy: ``{task: share of correct greedy answers on data}``.
        step: the selected checkpoint (optimizer steps).
        history: ``[(step, {task: accuracy}), …]`` at every checkpoint.
        result: the trainer's :class:`TrainResult`.
        seconds: training time.
    """

    model: Transformer
    data: TaskData
    accuracy: dict[str, float]
    step: int
    history: tuple[tuple[int, dict[str, float]], ...]
    result: TrainResult
    seconds: float


@torch.no_grad()
def answer_correct(model: Transformer, data: TaskData) -> torch.Tensor:
    """``[N]`` bool: the model's greedy answer equals the reference answer.

    Teacher-forced argmax at every answer token: if all are right, greedy decoding produces
    the same tokens (each step sees the same, correct, prefix); if one is wrong, greedy
    decoding first errs at the first wrong one. So the two agree exactly.
    """
    model.eval()
    logits = model(data.inputs)  # [N, T, V]
    pred = logits.argmax(-1)
    targets = data.targets
    scored = targets != -100
    wrong = (pred != targets) & scored
    return ~wrong.any(1)


@torch.no_grad()
def answer_confidence(model: Transformer, data: TaskData) -> torch.Tensor:
    """``[N]``: the model's probability of its own greedy answer, the product over answer tokens
    (teacher-forced on its own greedy tokens is the same as on the reference up to the first
    error; here, on the reference prefix): the confidence baseline of a probe."""
    model.eval()
    probs = model(data.inputs).softmax(-1)  # [N, T, V]
    top = probs.max(-1).values  # [N, T]
    scored = data.targets != -100
    return torch.where(scored, top, torch.ones_like(top)).prod(1)


def task_accuracy(model: Transformer, data: TaskData) -> dict[str, float]:
    """``{task: accuracy}`` over the tasks present in ``data``."""
    correct = answer_correct(model, data)
    return {TASKS[t]: float(correct[data.task == t].float().mean())
            for t in sorted(set(data.task.tolist()))}


def _band_distance(accuracy: dict[str, float], band: tuple[float, float]) -> float:
    low, high = band
    return sum(max(0.0, low - a) + max(0.0, a - high) for a in accuracy.values())


def train_multitask(
    *,
    spec: TaskSpec | None = None,
    model_config: TransformerConfig | None = None,
    trainer_config: TrainerConfig | None = None,
    n_train: int | dict[str, int] | None = None,
    n_eval: int = 600,
    band: tuple[float, float] = BAND,
    seed: int = 0,
    progress: bool = False,
) -> MultiTaskModel:
    """Train one :class:`Transformer` on all five tasks; keep the checkpoint in ``band``.

    Defaults: :data:`TRUTH_SPEC`, the mixture :data:`TRUTH_MIX` (``n_train``: a count per task
    or one for all), a 2-layer model with d_model = 64, 4 heads, d_mlp = 256, and
    :data:`TRUTH_TRAINER`.

    Checkpoints are taken every ``trainer_config.eval_every`` steps; the selected one minimizes
    Σ_task dist(accuracy_task, band) on a selection set (fresh draws, seed + 1), ties going to
    the later step. Probes then use ``n_eval`` per task of other fresh draws (seed + 2), so
    the selection does not bias them.
    """
    spec = TRUTH_SPEC if spec is None else spec
    n_train = dict(TRUTH_MIX) if n_train is None else n_train
    if not isinstance(n_train, dict):
        n_train = check_count("n_train", n_train)
    n_eval = check_count("n_eval", n_eval, minimum=4)
    if not (0.0 <= band[0] < band[1] <= 1.0):
        raise ValueError(f"band must be (low, high) with 0 <= low < high <= 1, got {band}")
    train_data = make_tasks(n_train, seed=seed, spec=spec)
    select = make_tasks(max(100, n_eval // 2), seed=seed + 1, spec=spec)
    probe_data = make_tasks(n_eval, seed=seed + 2, spec=spec)
    if model_config is None:
        model_config = TransformerConfig(vocab_size=train_data.vocab.size, d_model=64,
                                         n_layers=2, n_heads=4, d_mlp=256,
                                         max_len=train_data.ids.shape[1])
    if model_config.vocab_size < train_data.vocab.size:
        raise ValueError(f"model_config.vocab_size={model_config.vocab_size} < the tasks' "
                         f"vocabulary size {train_data.vocab.size}")
    trainer_config = TRUTH_TRAINER if trainer_config is None else trainer_config
    torch.manual_seed(seed)
    model = Transformer(model_config)
    history: list[tuple[int, dict[str, float]]] = []
    best: list = [math.inf, 0, None]

    def keep(step: int, m: torch.nn.Module) -> None:
        acc = task_accuracy(m, select)
        history.append((step, acc))
        dist = _band_distance(acc, band)
        if dist <= best[0]:
            best[:] = [dist, step, copy.deepcopy(m.state_dict())]

    start = time.perf_counter()
    result = train(model, train_data.inputs, train_data.targets, config=trainer_config,
                   seed=seed, progress=progress, callback=keep)
    model.load_state_dict(best[2])
    model.eval()
    return MultiTaskModel(model, probe_data, task_accuracy(model, probe_data), best[1],
                          tuple(history), result, time.perf_counter() - start)


def last_prompt_activations(model: Transformer, data: TaskData, batch_size: int = 512
                            ) -> torch.Tensor:
    """``[L + 1, N, d_model]``: the residual stream at the last prompt token (``=``) after the
    embedding and after each block, read by :func:`otkit.steering.collect_activations` with a
    mask that keeps that one position (the masked mean over one token is that token)."""
    inputs = data.inputs
    mask = torch.zeros(inputs.shape, dtype=torch.long)
    mask[:, data.last_prompt] = 1
    batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
    masks = [mask[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
    acts = collect_activations(model, model.hook_names, batches, pool="mean", mask=masks)
    return torch.stack([acts[n] for n in model.hook_names])


@dataclass(frozen=True)
class Probe:
    """A fitted L2 logistic probe: ``direction`` w in raw activation coordinates ([d]), and
    the sklearn pipeline's pieces."""

    direction: np.ndarray
    scaler: StandardScaler
    classifier: LogisticRegression

    def score(self, x: np.ndarray) -> np.ndarray:
        """Decision values wᵀh + b, ``[n]``."""
        return self.classifier.decision_function(self.scaler.transform(x))


#: The probes' penalties: ‖w‖² / (2C) (``"l2"``, lbfgs) or ‖w‖₁ / C (``"l1"``, the paper's
#: sparse probes, liblinear).
PENALTIES = ("l2", "l1")


def fit_probe(x: np.ndarray, y: np.ndarray, *, C: float = 1.0, seed: int = 0,
              penalty: str = "l2") -> Probe:
    """A logistic probe on standardized features ``x: [n, d]``, labels ``y: [n]`` in {0, 1}.

    ``penalty="l2"`` minimizes Σ_i log(1 + exp(−y_i (wᵀh_i + b))) + ‖w‖² / (2C);
    ``penalty="l1"`` replaces the penalty by ‖w‖₁ / C, which zeroes most weights (a sparse
    probe: its support is the neurons with w_j ≠ 0).
    The raw-coordinate direction is w / σ (σ the features' standard deviations): wᵀ((h − μ)/σ)
    = (w/σ)ᵀh + const.
    """
    C = check_positive("C", C)
    check_choice("penalty", penalty, PENALTIES)
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise ValueError("y holds one class only: a probe needs correct and wrong answers")
    scaler = StandardScaler().fit(x)
    if penalty == "l1":
        clf = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=C, random_state=seed, max_iter=2000)
    else:
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(x), y)
    return Probe(clf.coef_[0] / scaler.scale_, scaler, clf)


def _auroc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def auroc_matrix(
    probes: Sequence[Probe | None], x: np.ndarray, y: np.ndarray,
    halves: Sequence[tuple[np.ndarray, np.ndarray]],
    transform: Callable[[int, int], Callable[[np.ndarray], np.ndarray]] | None = None,
) -> np.ndarray:
    """The in/cross-task AUROC matrix ``[K, K]`` of K probes (one per task).

    [a, b] = AUROC on task b's test half (``halves[b][1]``: row indices into ``x: [N, d]``,
    labels ``y: [N]``) of probe a's scores; the diagonal is the in-task AUROC. A missing probe
    (None) leaves its row and column NaN. ``transform(a, b)``, if given, maps task b's test
    activations before probe a scores them (off the diagonal only: the label-free alignments
    of :mod:`otkit.truth.transfer`).
    """
    k = len(probes)
    if len(halves) != k:
        raise ValueError(f"halves must hold one (train, test) pair per probe ({k}), got {len(halves)}")
    m = np.full((k, k), np.nan)
    for a in range(k):
        for b in range(k):
            if probes[a] is None or probes[b] is None:
                continue
            xb = x[halves[b][1]]
            if transform is not None and a != b:
                xb = transform(a, b)(xb)
            m[a, b] = _auroc(y[halves[b][1]], probes[a].score(xb))
    return m


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norm) if norm > 0 else float("nan")


def random_cosine(d: int, samples: int = 20000, seed: int = 0) -> float:
    """E|cos(u, v)| for independent uniform directions in ℝ^d (Monte Carlo; ≈ √(2/(π d)))."""
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal((2, samples, d))
    return float(np.mean(np.abs((u * v).sum(1)) / (np.linalg.norm(u, axis=1)
                                                   * np.linalg.norm(v, axis=1))))


@dataclass(frozen=True)
class ProbeStudy:
    """Probes at every layer.

    Attributes (K tasks, L + 1 layers; layer 0 is the embedding):
        tasks: the K task names.
        auroc: ``[L + 1, K, K]``; [l, i, j] = AUROC on task j's held-out half of the probe fitted
            on task i's training half (diagonal: in-task).
        cosine: ``[L + 1, K, K]`` cosines of the probe directions.
        self_cosine: ``[L + 1, K]`` cosine between probes fitted on the two halves of a task.
        random_cosine: E|cos| of random directions in ℝ^d.
        confidence_auroc: ``[K]`` AUROC of the model's answer probability, per task (test half).
        task_decoding: ``[L + 1]`` held-out accuracy of a multinomial probe for the task id.
        silhouette: ``[L + 1]`` silhouette score of the activations labelled by task.
        accuracy: ``[K]`` share of correct answers per task.
        C: the probes' inverse L2 strength.
    """

    tasks: tuple[str, ...]
    auroc: np.ndarray
    cosine: np.ndarray
    self_cosine: np.ndarray
    random_cosine: float
    confidence_auroc: np.ndarray
    task_decoding: np.ndarray
    silhouette: np.ndarray
    accuracy: np.ndarray
    C: float

    def in_task(self, layer: int) -> np.ndarray:
        """``[K]`` diagonal AUROCs at ``layer``."""
        return np.diag(self.auroc[layer])

    def cross_task(self, layer: int) -> np.ndarray:
        """``[K (K − 1)]`` off-diagonal AUROCs at ``layer``."""
        k = len(self.tasks)
        return self.auroc[layer][~np.eye(k, dtype=bool)]

    def off_cosine(self, layer: int) -> np.ndarray:
        """``[K (K − 1) / 2]`` |cos| between the probe directions of different tasks."""
        k = len(self.tasks)
        return np.abs(self.cosine[layer][np.triu_indices(k, 1)])

    @property
    def best_layer(self) -> int:
        """The probed layer with the highest mean in-task AUROC."""
        means = [_nanmean(self.in_task(v)) for v in range(self.auroc.shape[0])]
        return int(np.argmax([-np.inf if np.isnan(m) else m for m in means]))

    @property
    def probed(self) -> list[int]:
        """The layers that were probed."""
        return [v for v in range(self.auroc.shape[0]) if np.isfinite(self.auroc[v]).any()]


def probe_study(
    acts: torch.Tensor,
    correct: torch.Tensor,
    task: torch.Tensor,
    *,
    confidence: torch.Tensor | None = None,
    C: float = 1.0,
    layers: Sequence[int] | None = None,
    seed: int = 0,
) -> ProbeStudy:
    """Fit one L2 probe per (layer, task) and cross-evaluate (see :class:`ProbeStudy`).

    Args:
        acts: ``[L + 1, N, d]`` activations (:func:`last_prompt_activations`).
        correct: ``[N]`` bool labels (:func:`answer_correct`).
        task: ``[N]`` task ids.
        confidence: ``[N]`` answer probabilities for the baseline (optional).
        C: inverse L2 regularization strength of every probe.
        layers: the layers to probe (default: every layer whose activations vary; at the
            last prompt token the embedding layer h⁰ is the same vector for every prompt,
            since ``=`` sits at one position, and is skipped); others are NaN.
        seed: splits each task's examples into two halves.
    """
    if acts.ndim != 3:
        raise ValueError(f"acts must be [L + 1, N, d], got shape {tuple(acts.shape)}")
    n = acts.shape[1]
    if correct.shape != (n,) or task.shape != (n,):
        raise ValueError(f"correct and task must be [N] = [{n}], got {tuple(correct.shape)} "
                         f"and {tuple(task.shape)}")
    C = check_positive("C", C)
    n_layers, _, d = acts.shape
    x_all = acts.detach().double().cpu().numpy()
    if layers is None:
        layers = [v for v in range(n_layers) if x_all[v].std(0).max() > 1e-8]
    layers = [int(v) for v in layers]
    for v in layers:
        if not 0 <= v < n_layers:
            raise ValueError(f"layers must lie in [0, {n_layers}), got {v}")
    y = correct.cpu().numpy().astype(int)
    t = task.cpu().numpy()
    ids = sorted(set(t.tolist()))
    names = tuple(TASKS[i] for i in ids)
    k = len(ids)
    rng = np.random.default_rng(seed)
    halves = []
    for i in ids:
        idx = rng.permutation(np.flatnonzero(t == i))
        halves.append((idx[: len(idx) // 2], idx[len(idx) // 2:]))
    auroc = np.full((n_layers, k, k), np.nan)
    cosine = np.full((n_layers, k, k), np.nan)
    self_cos = np.full((n_layers, k), np.nan)
    decoding = np.full(n_layers, np.nan)
    silhouette = np.full(n_layers, np.nan)
    train_all = np.concatenate([h[0] for h in halves])
    test_all = np.concatenate([h[1] for h in halves])
    for layer in layers:
        x = x_all[layer]
        probes: list[Probe | None] = []
        for a, (tr, te) in enumerate(halves):
            half = len(tr) // 2
            if min(len(np.unique(y[tr[:half]])), len(np.unique(y[tr[half:]]))) < 2:
                probes.append(None)  # a task answered all right (or all wrong): no probe
                continue
            probes.append(fit_probe(x[tr], y[tr], C=C, seed=seed))
            p1 = fit_probe(x[tr[:half]], y[tr[:half]], C=C, seed=seed)
            p2 = fit_probe(x[tr[half:]], y[tr[half:]], C=C, seed=seed)
            self_cos[layer, a] = _cos(p1.direction, p2.direction)
        auroc[layer] = auroc_matrix(probes, x, y, halves)
        for a in range(k):
            for b in range(k):
                if probes[a] is not None and probes[b] is not None:
                    cosine[layer, a, b] = _cos(probes[a].direction, probes[b].direction)
        scaler = StandardScaler().fit(x[train_all])
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        clf.fit(scaler.transform(x[train_all]), t[train_all])
        decoding[layer] = float((clf.predict(scaler.transform(x[test_all])) == t[test_all]).mean())
        silhouette[layer] = float(silhouette_score(x, t, random_state=seed))
    conf = np.full(k, np.nan)
    if confidence is not None:
        c = confidence.detach().cpu().numpy()
        conf = np.array([_auroc(y[te], c[te]) for _, te in halves])
    acc = np.array([y[t == i].mean() for i in ids])
    return ProbeStudy(names, auroc, cosine, self_cos, random_cosine(d, seed=seed), conf,
                      decoding, silhouette, acc, C)


def summarize(study: ProbeStudy, layer: int | None = None) -> dict[str, float]:
    """Headline numbers at ``layer`` (default: the best in-task layer)."""
    layer = study.best_layer if layer is None else int(layer)
    in_task, cross = study.in_task(layer), study.cross_task(layer)
    return {
        "layer": layer,
        "in_task_auroc": _nanmean(in_task),
        "min_in_task_auroc": _nanext(in_task, min),
        "cross_task_auroc": _nanmean(cross),
        "cross_task_auroc_max": _nanext(cross, max),
        "cross_task_auroc_min": _nanext(cross, min),
        "abs_cosine": _nanmean(study.off_cosine(layer)),
        "max_abs_cosine": _nanext(study.off_cosine(layer), max),
        "self_cosine": _nanmean(study.self_cosine[layer]),
        "random_cosine": study.random_cosine,
        "task_decoding": float(study.task_decoding[layer]),
        "silhouette": float(study.silhouette[layer]),
        "confidence_auroc": _nanmean(study.confidence_auroc),
    }


def _nanext(values: np.ndarray, pick) -> float:
    values = np.asarray(values, dtype=float)
    return float(pick(values[np.isfinite(values)])) if np.isfinite(values).any() else math.nan


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else math.nan


#: Thresholds of :func:`read_claims` (stated in the notebook's reading).
NEAR_CHANCE = 0.05  # |mean cross-task AUROC − 0.5| at most this: "near chance"
NEAR_ORTHOGONAL = 2.0  # mean off-task |cos| at most this times the random-direction E|cos|
CLUSTERED = 0.9  # task-ID decoding accuracy at least this (and silhouette > 0)


def chance_verdict(auroc: Interval) -> str:
    """"near chance" when the interval of a mean AUROC lies inside 0.5 ± :data:`NEAR_CHANCE`,
    "above chance" / "below chance" when it lies outside it on one side, else "unclear"."""
    if 0.5 - NEAR_CHANCE <= auroc.low and auroc.high <= 0.5 + NEAR_CHANCE:
        return "near chance"
    if auroc.low > 0.5 + NEAR_CHANCE:
        return "above chance"
    if auroc.high < 0.5 - NEAR_CHANCE:
        return "below chance"
    return "unclear"


def read_claims(studies: Sequence[ProbeStudy], layer: int | None = None) -> dict[str, object]:
    """The paper's three claims read over several probe studies (e.g. several split seeds).

    ``layer``: the layer read in every study; None reads each study at its own best layer
    (:attr:`ProbeStudy.best_layer`), and the returned ``"layer"`` is the most common one. Each number is a mean over ``studies`` with its Student-t interval
    (:func:`otkit.stats.mean_interval`). Verdicts:

    * ``transfer``: "near chance" when the interval of the mean cross-task AUROC lies inside
      0.5 ± :data:`NEAR_CHANCE`, "above chance" / "below chance" when it lies outside it on one
      side, else "unclear"; in-task AUROC is reported beside it.
    * ``orthogonal``: "near-orthogonal" when the mean off-task |cos| is at most
      :data:`NEAR_ORTHOGONAL` × the random-direction E|cos|, else "aligned".
    * ``clusters``: "clustered" when task-ID decoding is at least :data:`CLUSTERED` and the
      silhouette is positive, else "not clustered".
    """
    if not studies:
        raise ValueError("studies is empty")
    rows = [summarize(st, layer) for st in studies]
    layers = [r["layer"] for r in rows]
    layer = max(set(layers), key=layers.count)

    def interval(key: str):
        values = [r[key] for r in rows]
        if not all(np.isfinite(values)):
            return Interval(math.nan, math.nan, math.nan, len(values), 0.95)
        if len(values) < 2:
            v = values[0]
            return Interval(v, v, v, 1, 0.95)
        return mean_interval(values)

    cross, in_task = interval("cross_task_auroc"), interval("in_task_auroc")
    transfer = chance_verdict(cross)
    cos, self_cos = interval("abs_cosine"), interval("self_cosine")
    rand = studies[0].random_cosine
    decoding, silhouette = interval("task_decoding"), interval("silhouette")
    return {
        "layer": layer,
        "in_task_auroc": in_task,
        "cross_task_auroc": cross,
        "transfer": transfer,
        "abs_cosine": cos,
        "self_cosine": self_cos,
        "random_cosine": rand,
        "orthogonal": "near-orthogonal" if cos.estimate <= NEAR_ORTHOGONAL * rand else "aligned",
        "task_decoding": decoding,
        "silhouette": silhouette,
        "clusters": ("clustered" if decoding.estimate >= CLUSTERED and silhouette.estimate > 0
                     else "not clustered"),
        "confidence_auroc": interval("confidence_auroc"),
    }
