r"""Amortized SD-FM: semidiscrete flow-matching pairs from an amortized MIPS model.

SD-FM (Mousavi-Hosseini et al. 2025) pairs each source point x with the target
y_{j(x)}, j(x) = argmax_j g_j − ½‖x − y_j‖², for a fitted dual vector g ``[N]``. That
assignment is a MIPS over the augmented keys k_j = (y_j, g_j − ½‖y_j‖²) ``[N, d + 1]`` with
the query q = (x, 1) (:func:`~otkit.amips.search.augmented_keys`), so a KeyNet trained on
those keys (Olausson et al. 2026) predicts the key k̂(q) ≈ k_{j(x)} in one forward pass,
without the O(N·d) scan of the targets per point. Two ways to use the prediction:

* ``decode=True``: snap k̂ to the nearest key and pair x with that key's target (the MIPS
  answer). With ``index=None`` decoding scans all N keys (O(N·d) per point, the accuracy of the
  amortized assignment, not its speed); with an :class:`~otkit.amips.search.IVFIndex` over the
  augmented keys (:func:`augmented_index`) it scans only the ``nprobe`` cells whose centroids
  are nearest to k̂ (O((C + nprobe·N/C)·d) per point, sublinear in N), and with nprobe = C it
  returns exactly the full scan's key;
* ``decode=False``: pair x with the first d coordinates of k̂ itself, the predicted target
  (one forward pass, no scan; the target is off the data where the network errs).

:func:`amortized_sdfm_study` trains flows on exact and on amortized pairs at equal budget
and compares their samples (W₂ to held-out data, paired over seeds).
:func:`ivf_decoding_benchmark` measures the IVF-decoded assigner against the exact assignment
and the full-scan decode at a larger N (agreement, CPU seconds per point, keys scanned).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..flows.couplings import SemidiscreteCoupling
from ..flows.study import flow_benchmark, run_flow_study, semidiscrete_coupling
from ..semidiscrete import chi2_error
from ..stats import compare
from ..validation import check_count
from .models import KeyNet
from .search import IVFIndex, augmented_keys, augmented_queries, nearest_key
from .train import fit

__all__ = [
    "AmortizedSemidiscreteCoupling", "fit_assigner", "AmortizedSDFMStudy", "amortized_sdfm_study",
    "augmented_index", "IVFDecodingBenchmark", "ivf_decoding_benchmark",
]


@dataclass(frozen=True, repr=False)
class AmortizedSemidiscreteCoupling(SemidiscreteCoupling):
    """SD-FM pairs from a KeyNet trained on the augmented keys of ``fit`` (module docstring).

    Args:
        fit: the semidiscrete fit whose assignment the model amortizes (targets ``fit.y``).
        model: a :class:`~otkit.amips.models.KeyNet` on (d + 1)-dimensional queries (x, 1).
        decode: snap the predicted key to the nearest augmented key (True) or use its first
            d coordinates as the target (False).
        index: None (decode by a full scan of the N augmented keys) or an IVF index over them
            (:func:`augmented_index`): decode within the ``nprobe`` cells nearest to k̂.
        nprobe: the cells scanned per point with ``index`` (required with it).
    """

    model: torch.nn.Module | None = None
    decode: bool = True
    index: IVFIndex | None = None
    nprobe: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.soft:
            raise ValueError("soft=True is not amortized: use decode= instead")
        dim = self.fit.y.shape[1] + 1
        if not isinstance(self.model, KeyNet) or self.model.dim != dim:
            raise ValueError(f"model must be a KeyNet on {dim}-dimensional queries (x, 1)")
        if self.index is not None:
            if not isinstance(self.index, IVFIndex):
                raise TypeError(f"index must be an IVFIndex or None, got {type(self.index).__name__}")
            if tuple(self.index.keys.shape) != (self.fit.y.shape[0], dim):
                raise ValueError(f"index must hold the fit's {self.fit.y.shape[0]} augmented keys in R^{dim} "
                                 f"(augmented_index), got keys of shape {tuple(self.index.keys.shape)}")
            if not isinstance(self.nprobe, int) or not 1 <= self.nprobe <= self.index.cells:
                raise ValueError(f"nprobe must be an int in [1, {self.index.cells}] with an index, got {self.nprobe!r}")
        elif self.nprobe is not None:
            raise ValueError("nprobe needs an index (augmented_index)")

    @property
    def name(self) -> str:  # type: ignore[override]
        if not self.decode:
            return "amortized SD (raw)"
        return "amortized SD (decoded)" if self.index is None else f"amortized SD (IVF, nprobe {self.nprobe})"

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted augmented keys k̂((x, 1)) ``[n, d + 1]`` for ``x: [n, d]``."""
        d = self.fit.y.shape[1]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"x0 must have shape [n, {d}] (the fit's targets), got {tuple(x.shape)}")
        with torch.no_grad():
            return self.model.key(augmented_queries(x).to(next(self.model.parameters()))).to(x)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded assignment ``[n]``: the index of the augmented key nearest to k̂((x, 1))
        (among all keys, or within the ``nprobe`` cells of ``index`` nearest to k̂)."""
        predicted = self.predict(x)
        if self.index is not None:
            return self.index.search(predicted.to(self.index.keys), self.nprobe, routing="l2", score="l2")[0]
        keys = augmented_keys(self.fit.y.to(x), self.fit.g.to(x))
        return nearest_key(predicted, keys)

    def _pair(self, x0, x1, generator) -> dict:
        if self.decode:
            target = self.fit.y.to(x0)[self.assign(x0)]
        else:
            target = self.predict(x0)[:, : self.fit.y.shape[1]]
        return dict(source=x0, target=target, renormalized_entropy=0.0, epsilon=self.fit.epsilon,
                    n_iter=0, converged=True)


def fit_assigner(coupling: SemidiscreteCoupling, source, *, hidden: int = 64, steps: int = 1500,
                 lr: float = 3e-3, seed: int = 0) -> KeyNet:
    """A KeyNet ((d + 1) → hidden → hidden → (d + 1)) trained on queries (x, 1), x from
    ``source(n, generator)``, against the augmented keys of ``coupling.fit`` (exact targets)."""
    y, g = coupling.fit.y, coupling.fit.g
    keys = augmented_keys(y.double(), g.double()).float()
    model = KeyNet(y.shape[1] + 1, (check_count("hidden", hidden),) * 2,
                   generator=torch.Generator().manual_seed(seed))
    fit(model, keys, lambda n, gen: augmented_queries(source(n, gen).float()), steps=steps, lr=lr,
        generator=torch.Generator().manual_seed(seed + 1))
    return model


@dataclass(frozen=True)
class AmortizedSDFMStudy:
    """Flows trained on exact and amortized SD-FM pairs, over seeds.

    Attributes:
        rows: one dict per (seed, coupling, NFE): ``seed``, ``coupling``, ``nfe``, ``w2`` and
            the rest of :func:`otkit.flows.study.run_flow_study`'s row.
        agreement: per seed, the share of fresh source points the amortized assigner sends to
            the exact target.
        chi2: per seed, the exact potential's χ² marginal error on fresh batches.
        chi2_amortized: per seed, the χ² marginal error of the decoded amortized assignment on
            the same kind of batches (:func:`otkit.semidiscrete.chi2_error` of its one-hot rows).
        flops_ratio: the assigner's forward pass over the exact scan's 2·N·(d + 1), per point.
        comparisons: per (amortized coupling, NFE), :func:`otkit.stats.compare` of its W₂
            against the exact pairs' (paired by seed): ``{"coupling", "nfe", "ratio",
            "difference", "low", "high", "verdict"}``.
    """

    rows: list[dict]
    agreement: list[float]
    chi2: list[float]
    chi2_amortized: list[float]
    flops_ratio: float
    comparisons: list[dict]


def amortized_sdfm_study(
    benchmark: str = "moons", *, seeds: Sequence[int] = (0, 1, 2), train_size: int = 512,
    sd_steps: int = 30_000, sd_lr: float = 0.1, sd_ema: float = 0.999, sd_tol: float = 0.02,
    assigner_steps: int = 1500, hidden: int = 64, flow_steps: int = 1000, batch_size: int = 256,
    nfes: Sequence[int] = (1, 4), num_samples: int = 1000,
) -> AmortizedSDFMStudy:
    """Exact SD-FM pairs against amortized ones (decoded and raw), at equal flow budget.

    Per seed: the 2-D ``benchmark`` with a finite target set of ``train_size`` points, its
    semidiscrete potential fitted to χ² ≤ ``sd_tol`` (SGD, EMA; as notebook 03), a KeyNet
    assigner trained for ``assigner_steps`` on its augmented keys, then one flow per pairing
    (:func:`otkit.flows.study.run_flow_study`, the same model seed, steps and data), scored by
    W₂ to held-out target points at each NFE."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise ValueError(f"seeds must hold at least 2 seeds (paired verdicts), got {seeds}")
    rows, agreement, chi2, chi2_amortized = [], [], [], []
    for s in seeds:
        bench = flow_benchmark(benchmark, train_size=check_count("train_size", train_size),
                               reference_size=num_samples, seed=s)
        exact = semidiscrete_coupling(bench, steps=sd_steps, lr=sd_lr, ema=sd_ema, tol=sd_tol,
                                      chi2_batches=16, seed=s)
        chi2.append(exact.fit.chi2_error(bench.source, num_batches=16,
                                         generator=torch.Generator().manual_seed(99)))
        model = fit_assigner(exact, bench.source, hidden=hidden, steps=assigner_steps, seed=s)
        decoded = AmortizedSemidiscreteCoupling(exact.fit, model=model, decode=True)
        raw = AmortizedSemidiscreteCoupling(exact.fit, model=model, decode=False)
        x = bench.source(4096, torch.Generator().manual_seed(40_000 + s))
        amortized = decoded.assign(x)
        agreement.append(float((amortized == exact.fit.assign(x)).float().mean()))
        eye = torch.eye(train_size, dtype=exact.fit.b.dtype)
        chi2_amortized.append(sum(chi2_error(eye[amortized[i : i + 1024]], exact.fit.b)
                                  for i in range(0, 4096, 1024)) / 4)
        flops_ratio = 2 * sum(p.numel() for p in model.parameters()) / (2 * train_size * (bench.dim + 1))
        rows += run_flow_study(bench, [exact, decoded, raw], [batch_size], nfes=nfes, steps=flow_steps,
                               batch_size=batch_size, seed=s, num_samples=num_samples)
    comparisons = []
    for label in ("amortized SD (decoded)", "amortized SD (raw)"):
        for nfe in nfes:
            mine = [next(r["w2"] for r in rows if (r["seed"], r["coupling"], r["nfe"]) == (s, label, nfe)) for s in seeds]
            base = [next(r["w2"] for r in rows if (r["seed"], r["coupling"], r["nfe"]) == (s, "semidiscrete", nfe)) for s in seeds]
            c = compare(mine, base)
            comparisons.append({"coupling": label, "nfe": nfe, "ratio": c.ratio,
                                "difference": float(c.difference.estimate), "low": float(c.difference.low),
                                "high": float(c.difference.high), "verdict": c.verdict})
    return AmortizedSDFMStudy(rows, agreement, chi2, chi2_amortized, flops_ratio, comparisons)


def augmented_index(fit, cells: int, *, iters: int = 20, dtype: torch.dtype = torch.float32,
                    generator: torch.Generator | None = None) -> IVFIndex:
    """An :class:`~otkit.amips.search.IVFIndex` of ``cells`` k-means cells over the augmented
    keys (y_j, g_j − ½‖y_j‖²) ``[N, d + 1]`` of a semidiscrete ``fit`` (in ``dtype``)."""
    keys = augmented_keys(fit.y.double(), fit.g.double()).to(dtype)
    return IVFIndex.build(keys, check_count("cells", cells), iters=iters, generator=generator)


def _cpu_seconds(fn, repeats: int) -> tuple[float, object]:
    """The smallest process CPU time of ``repeats`` calls of ``fn()`` (the least disturbed by the
    other processes), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


@dataclass(frozen=True)
class IVFDecodingBenchmark:
    """The IVF-decoded amortized assigner at N targets, over seeds.

    Attributes:
        rows: per (seed, method): ``seed``, ``method`` (``"exact"``: the semidiscrete assignment,
            a scan of the N targets; ``"full scan"``: the amortized decode over all N augmented
            keys; ``"ivf nprobe p"``: the IVF decode), ``nprobe`` (None for the scans),
            ``agreement`` (share of points sent to the exact target), ``full_scan_agreement``
            (share decoded to the same key as the full scan), ``seconds_per_point`` (CPU),
            ``time_ratio`` (over the full-scan decode's), ``scanned`` (keys scanned per point).
        targets, cells: N and the number of k-means cells C.
        chi2: per seed, the fitted potential's χ² marginal error (fresh batches).
    """

    rows: list[dict]
    targets: int
    cells: int
    chi2: list[float]

    def values(self, method: str, key: str) -> list[float]:
        """``key`` of ``method`` per seed, in seed order."""
        out = [float(r[key]) for r in self.rows if r["method"] == method]
        if not out:
            raise ValueError(f"method must be one of {sorted({r['method'] for r in self.rows})}, got {method!r}")
        return out


def ivf_decoding_benchmark(
    benchmark: str = "moons", *, targets: int = 4096, seeds: Sequence[int] = (0, 1, 2), cells: int | None = None,
    nprobes: Sequence[int] = (1, 2, 4), sd_steps: int = 3000, sd_lr: float = 0.1, sd_ema: float = 0.999,
    assigner_steps: int = 1500, hidden: int = 64, points: int = 4096, repeats: int = 3,
) -> IVFDecodingBenchmark:
    """Per seed: the 2-D ``benchmark`` with ``targets`` points as the finite target set, its
    semidiscrete potential (``sd_steps`` SGD steps, EMA; not run to a χ² tolerance: the benchmark
    needs a potential, not the best one, and reports its χ²), a KeyNet assigner
    (:func:`fit_assigner`), an IVF index of ``cells`` (default ⌊√N⌋) k-means cells over the
    augmented keys, and on ``points`` fresh source points: the exact assignment, the amortized
    full-scan decode and the IVF decode at each nprobe, each timed in single-process CPU
    seconds (the best of ``repeats`` calls, the assigner's forward pass included)."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    targets = check_count("targets", targets, minimum=2)
    cells = int(targets**0.5) if cells is None else check_count("cells", cells)
    if cells > targets:
        raise ValueError(f"cells must be <= targets ({targets}), got {cells}")
    nprobes = sorted({check_count("nprobes", p) for p in nprobes})
    if nprobes[-1] > cells:
        raise ValueError(f"nprobes must be <= cells ({cells}), got {nprobes[-1]}")
    points = check_count("points", points)
    repeats = check_count("repeats", repeats)
    rows, chi2 = [], []
    for s in seeds:
        bench = flow_benchmark(benchmark, train_size=targets, reference_size=16, seed=s)
        exact = semidiscrete_coupling(bench, steps=sd_steps, lr=sd_lr, ema=sd_ema, seed=s)
        chi2.append(exact.fit.chi2_error(bench.source, num_batches=4, generator=torch.Generator().manual_seed(99)))
        model = fit_assigner(exact, bench.source, hidden=hidden, steps=assigner_steps, seed=s)
        index = augmented_index(exact.fit, cells, generator=torch.Generator().manual_seed(s))
        x = bench.source(points, torch.Generator().manual_seed(60_000 + s)).float()
        t_exact, truth = _cpu_seconds(lambda: exact.fit.assign(x), repeats)
        full = AmortizedSemidiscreteCoupling(exact.fit, model=model)
        t_full, scan = _cpu_seconds(lambda: full.assign(x), repeats)
        sizes = torch.bincount(index.labels, minlength=cells)
        rows.append({"seed": s, "method": "exact", "nprobe": None, "agreement": 1.0,
                     "full_scan_agreement": float((truth == scan).float().mean()),
                     "seconds_per_point": t_exact / points, "time_ratio": t_exact / t_full, "scanned": float(targets)})
        rows.append({"seed": s, "method": "full scan", "nprobe": None,
                     "agreement": float((scan == truth).float().mean()), "full_scan_agreement": 1.0,
                     "seconds_per_point": t_full / points, "time_ratio": 1.0, "scanned": float(targets)})
        for nprobe in nprobes:
            coupling = AmortizedSemidiscreteCoupling(exact.fit, model=model, index=index, nprobe=nprobe)
            t_ivf, found = _cpu_seconds(lambda: coupling.assign(x), repeats)
            probed = index.probe(coupling.predict(x), nprobe, routing="l2")
            rows.append({"seed": s, "method": f"ivf nprobe {nprobe}", "nprobe": nprobe,
                         "agreement": float((found == truth).float().mean()),
                         "full_scan_agreement": float((found == scan).float().mean()),
                         "seconds_per_point": t_ivf / points, "time_ratio": t_ivf / t_full,
                         "scanned": float(sizes[probed].sum(1).double().mean())})
    return IVFDecodingBenchmark(rows, targets, cells, chi2)
