r"""Beyond one probe per task: sparse supports, pooled probes, and transport alignment.

Three further readings of the Geometries of Truth claims (Azizian et al. 2025), at one layer,
on the same random halves as :func:`otkit.truth.study.probe_study`:

* **Sparse supports.** An L1 logistic probe per task (penalty ‖w‖₁ / C) keeps a set S_a of
  neurons; the paper finds the supports of different tasks nearly disjoint. The Jaccard index
  |S_a ∩ S_b| / |S_a ∪ S_b| is compared with that of random supports of the same sizes (its
  expectation under uniform draws, by Monte Carlo). The same sparse probes are also scored as
  probes: their own in/cross-task AUROC matrix (:func:`~otkit.truth.study.auroc_matrix`, as
  for the L2 probes), i.e. whether sparse probes transfer near chance too.
* **Mixtures.** A *pooled* probe fitted on every task's training half, scored per task, and the
  *leave-one-task-out* probe fitted on the other tasks only: the paper finds that training on a
  mixture does not give a probe that transfers to an unseen task.
* **Transport alignment (the extension the paper lacks).** Map task b's activations onto task a's
  law without labels, then apply a's probe. With the activations' means μ and covariances Σ
  (fitted on the training halves, label-free):

  - ``"mean"``: x ↦ x − μ_b + μ_a (a check: a shift adds a constant to a linear probe's
    score, so it leaves every AUROC unchanged);
  - ``"diagonal"``: x ↦ μ_a + (σ_a / σ_b) ⊙ (x − μ_b), the per-neuron Gaussian map (the 1-D
    OT map between Gaussian marginals, AcT's Gaussian estimator, Rodriguez et al. 2024);
  - ``"gaussian"``: x ↦ μ_a + A (x − μ_b) with A the Bures (Monge) map between N(μ_b, Σ_b) and
    N(μ_a, Σ_a) (:func:`otkit.gaussian.monge_map`), each covariance shrunk toward its diagonal
    by ``shrinkage`` (Σ ↦ (1 − λ)Σ + λ diag Σ, which keeps every neuron's variance) so the map
    is stable at a few hundred samples in d = 64.

  If a task's truth direction were the same up to a shift or rescaling of the activations,
  alignment would restore transfer; if the directions differ, it cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..gaussian import monge_map
from ..stats import compare, mean_interval
from ..validation import check_choice
from .study import _auroc, auroc_matrix, chance_verdict, fit_probe

__all__ = [
    "ALIGNMENTS", "alignment", "support", "random_jaccard", "TransferStudy", "transfer_study",
    "read_transfer",
]

#: Label-free maps of one task's activations onto another's law (module docstring).
ALIGNMENTS = ("none", "mean", "diagonal", "gaussian")


def _shrunk_cov(x: np.ndarray, shrinkage: float) -> np.ndarray:
    cov = np.atleast_2d(np.cov(x, rowvar=False))
    return (1 - shrinkage) * cov + shrinkage * np.diag(np.diag(cov))


def alignment(source: np.ndarray, target: np.ndarray, method: str, *, shrinkage: float = 0.1
              ) -> Callable[[np.ndarray], np.ndarray]:
    """The map of ``method`` (:data:`ALIGNMENTS`) from the law of ``source: [n, d]`` onto that of
    ``target: [m, d]``, fitted on those activations only (no labels)."""
    check_choice("method", method, ALIGNMENTS)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"source and target must be [n, d] and [m, d], got {source.shape} and {target.shape}")
    if not 0 <= shrinkage <= 1:
        raise ValueError(f"shrinkage must lie in [0, 1], got {shrinkage}")
    mu_s, mu_t = source.mean(0), target.mean(0)
    if method == "none":
        return lambda x: x
    if method == "mean":
        return lambda x: x - mu_s + mu_t
    if method == "diagonal":
        scale = target.std(0) / np.maximum(source.std(0), 1e-12)
        return lambda x: mu_t + scale * (x - mu_s)
    m = monge_map(torch.from_numpy(mu_s), torch.from_numpy(_shrunk_cov(source, shrinkage)),
                  torch.from_numpy(mu_t), torch.from_numpy(_shrunk_cov(target, shrinkage)))
    a, b = m.matrix.numpy(), m.offset.numpy()
    return lambda x: x @ a.T + b


def support(x: np.ndarray, y: np.ndarray, *, C: float, seed: int = 0) -> np.ndarray:
    """The neurons ``[s]`` kept by an L1 logistic probe (standardized features, inverse
    strength ``C``: :func:`~otkit.truth.study.fit_probe` with ``penalty="l1"``)."""
    return _kept(fit_probe(x, y, C=C, seed=seed, penalty="l1"))


def _kept(probe) -> np.ndarray:
    return np.flatnonzero(np.abs(probe.classifier.coef_[0]) > 0)


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b)) / union if union else float("nan")


def random_jaccard(d: int, size_a: int, size_b: int, *, samples: int = 2000, seed: int = 0) -> float:
    """E[Jaccard] of two uniform random subsets of {0, …, d − 1} of sizes ``size_a``, ``size_b``
    (Monte Carlo)."""
    rng = np.random.default_rng(seed)
    return float(np.mean([_jaccard(rng.choice(d, size_a, replace=False), rng.choice(d, size_b, replace=False))
                          for _ in range(samples)]))


@dataclass(frozen=True)
class TransferStudy:
    """The readings of the module docstring at one layer, on one split.

    Attributes (K tasks):
        tasks: the K task names.
        auroc: ``{method: [K, K]}`` for each of :data:`ALIGNMENTS`: [a, b] = AUROC on task b's
            test half of a's probe, after b's activations are mapped onto a's law (``"none"``: the
            plain cross-task matrix; the diagonal is the in-task AUROC for every method).
        pooled: ``[K]`` AUROC per task of the probe fitted on every task's training half.
        leave_one_out: ``[K]`` AUROC on task b of the probe fitted on the other tasks.
        l1_auroc: ``[K, K]`` the same matrix as ``auroc["none"]`` for the L1 (sparse) probes
            whose supports are ``supports``.
        supports: the K L1 supports (neuron indices).
        jaccard: ``[K, K]`` Jaccard indices of the supports (NaN on the diagonal).
        random_jaccard: ``[K, K]`` the expected Jaccard of random supports of the same sizes.
    """

    tasks: tuple[str, ...]
    auroc: dict[str, np.ndarray]
    pooled: np.ndarray
    leave_one_out: np.ndarray
    l1_auroc: np.ndarray
    supports: tuple[np.ndarray, ...]
    jaccard: np.ndarray
    random_jaccard: np.ndarray

    def cross_task(self, method: str = "none") -> np.ndarray:
        """``[K (K − 1)]`` off-diagonal AUROCs after ``method`` (``"l1"``: of the sparse
        probes, no alignment)."""
        k = len(self.tasks)
        matrix = self.l1_auroc if method == "l1" else self.auroc[check_choice("method", method, ALIGNMENTS)]
        return matrix[~np.eye(k, dtype=bool)]

    def off_diagonal(self, matrix: np.ndarray) -> np.ndarray:
        k = len(self.tasks)
        return matrix[np.triu_indices(k, 1)]


def transfer_study(
    acts: torch.Tensor | np.ndarray, correct: torch.Tensor | np.ndarray, task: torch.Tensor | np.ndarray,
    *, tasks: Sequence[str], C: float = 1.0, l1_C: float = 0.05, shrinkage: float = 0.1, seed: int = 0,
) -> TransferStudy:
    """Sparse supports, pooled / leave-one-task-out probes and aligned transfer at one layer.

    Args:
        acts: ``[N, d]`` activations at one layer (a slice of
            :func:`~otkit.truth.study.last_prompt_activations`).
        correct: ``[N]`` labels (the answer is right); task: ``[N]`` task ids 0..K − 1 (all
            present); tasks: their K names.
        C: the L2 probes' inverse strength; l1_C: the L1 probes'.
        shrinkage: of the covariances in the ``"gaussian"`` alignment.
        seed: the random halves, drawn as in :func:`~otkit.truth.study.probe_study` (the same
            seed gives the same halves).
    """
    x = acts.detach().double().cpu().numpy() if isinstance(acts, torch.Tensor) else np.asarray(acts, float)
    y = (correct.cpu().numpy() if isinstance(correct, torch.Tensor) else np.asarray(correct)).astype(int)
    t = task.cpu().numpy() if isinstance(task, torch.Tensor) else np.asarray(task)
    if x.ndim != 2 or y.shape != (len(x),) or t.shape != (len(x),):
        raise ValueError(f"acts must be [N, d] with correct and task [N], got {x.shape}, {y.shape}, {t.shape}")
    ids = sorted(set(t.tolist()))
    if len(tasks) != len(ids):
        raise ValueError(f"tasks must name the {len(ids)} task ids present, got {len(tasks)} names")
    k, d = len(ids), x.shape[1]
    rng = np.random.default_rng(seed)
    halves = []
    for i in ids:
        idx = rng.permutation(np.flatnonzero(t == i))
        halves.append((idx[: len(idx) // 2], idx[len(idx) // 2:]))
    probes = [fit_probe(x[tr], y[tr], C=C, seed=seed) for tr, _ in halves]
    auroc = {}
    for method in ALIGNMENTS:
        def transform(a: int, b: int, method: str = method) -> Callable[[np.ndarray], np.ndarray]:
            return alignment(x[halves[b][0]], x[halves[a][0]], method, shrinkage=shrinkage)

        auroc[method] = auroc_matrix(probes, x, y, halves, transform)
    train_all = np.concatenate([tr for tr, _ in halves])
    pooled_probe = fit_probe(x[train_all], y[train_all], C=C, seed=seed)
    pooled = np.array([_auroc(y[te], pooled_probe.score(x[te])) for _, te in halves])
    loo = np.full(k, np.nan)
    for b in range(k):
        others = np.concatenate([tr for a, (tr, _) in enumerate(halves) if a != b])
        te = halves[b][1]
        loo[b] = _auroc(y[te], fit_probe(x[others], y[others], C=C, seed=seed).score(x[te]))
    sparse = [fit_probe(x[tr], y[tr], C=l1_C, seed=seed, penalty="l1") for tr, _ in halves]
    l1_auroc = auroc_matrix(sparse, x, y, halves)
    supports = tuple(_kept(p) for p in sparse)
    jac = np.full((k, k), np.nan)
    rand = np.full((k, k), np.nan)
    for a in range(k):
        for b in range(k):
            if a != b and len(supports[a]) and len(supports[b]):
                jac[a, b] = _jaccard(supports[a], supports[b])
                rand[a, b] = random_jaccard(d, len(supports[a]), len(supports[b]), samples=500, seed=seed)
    return TransferStudy(tuple(tasks), auroc, pooled, loo, l1_auroc, supports, jac, rand)


def read_transfer(studies: Sequence[TransferStudy]) -> dict[str, object]:
    """The readings over several splits (≥ 2), each a mean with its Student-t interval:

    * ``pooled``, ``leave_one_out``: mean AUROC over tasks; ``mixture`` is
      :func:`~otkit.truth.study.chance_verdict` of the leave-one-task-out interval;
    * ``jaccard``, ``random_jaccard``: mean over task pairs; ``supports`` the paired verdict
      (:func:`otkit.stats.compare`) of the supports' Jaccard against random supports'
      ("lower": more disjoint than chance);
    * ``l1_in_task``, ``l1_cross_task``: mean in-task (diagonal) and cross-task AUROC of the
      sparse (L1) probes; ``l1_in_task_verdict`` and ``l1_transfer`` the chance verdicts of
      the two intervals (:func:`~otkit.truth.study.chance_verdict`), and
      ``l1_vs_l2`` the paired verdict of their cross-task AUROC against the L2 probes'
      ("higher": sparse probes transfer better);
    * ``aligned_<method>``: mean cross-task AUROC after each alignment, and
      ``aligned_<method>_vs_none`` its paired verdict against no alignment ("higher": the
      alignment restores some transfer); ``aligned_<method>_transfer`` its chance verdict.
    """
    if len(studies) < 2:
        raise ValueError(f"studies must hold at least 2 splits, got {len(studies)}")
    out: dict[str, object] = {}
    pooled = [float(np.nanmean(s.pooled)) for s in studies]
    loo = [float(np.nanmean(s.leave_one_out)) for s in studies]
    out["pooled"], out["leave_one_out"] = mean_interval(pooled), mean_interval(loo)
    out["mixture"] = chance_verdict(out["leave_one_out"])
    jac = [float(np.nanmean(s.off_diagonal(s.jaccard))) for s in studies]
    rand = [float(np.nanmean(s.off_diagonal(s.random_jaccard))) for s in studies]
    out["jaccard"], out["random_jaccard"] = mean_interval(jac), mean_interval(rand)
    out["supports"] = compare(jac, rand).verdict
    out["support_size"] = float(np.mean([len(x) for s in studies for x in s.supports]))
    none = [float(np.nanmean(s.cross_task("none"))) for s in studies]
    l1_cross = [float(np.nanmean(s.cross_task("l1"))) for s in studies]
    out["l1_in_task"] = mean_interval([float(np.nanmean(np.diag(s.l1_auroc))) for s in studies])
    out["l1_cross_task"] = mean_interval(l1_cross)
    out["l1_in_task_verdict"] = chance_verdict(out["l1_in_task"])
    out["l1_transfer"] = chance_verdict(out["l1_cross_task"])
    out["l1_vs_l2"] = compare(l1_cross, none).verdict
    for method in ALIGNMENTS[1:]:
        values = [float(np.nanmean(s.cross_task(method))) for s in studies]
        out[f"aligned_{method}"] = mean_interval(values)
        out[f"aligned_{method}_vs_none"] = compare(values, none).verdict
        out[f"aligned_{method}_transfer"] = chance_verdict(out[f"aligned_{method}"])
    out["aligned_none"] = mean_interval(none)
    return out
