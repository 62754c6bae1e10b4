r"""Amortized SD-FM: semidiscrete flow-matching pairs from an amortized MIPS model.

SD-FM (Mousavi-Hosseini et al. 2025) pairs each source point x with the target
y_{j(x)}, j(x) = argmax_j g_j − ½‖x − y_j‖², for a fitted dual vector g ``[N]``. That
assignment is a MIPS over the augmented keys k_j = (y_j, g_j − ½‖y_j‖²) ``[N, d + 1]`` with
the query q = (x, 1) (:func:`~otkit.amips.search.augmented_keys`), so a KeyNet trained on
those keys (Olausson et al. 2026) predicts the key k̂(q) ≈ k_{j(x)} in one forward pass,
without the O(N·d) scan of the targets per point. Two ways to use the prediction:

* ``decode=True``: snap k̂ to the nearest key and pair x with that key's target (the MIPS
  answer; decoding scans the keys, so this measures the accuracy of the amortized
  assignment, not its speed — an IVF index would make the scan sublinear);
* ``decode=False``: pair x with the first d coordinates of k̂ itself, the predicted target
  (one forward pass, no scan; the target is off the data where the network errs).

:func:`amortized_sdfm_study` trains flows on exact and on amortized pairs at equal budget
and compares their samples (W₂ to held-out data, paired over seeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..flows.couplings import SemidiscreteCoupling
from ..flows.study import flow_benchmark, run_flow_study, semidiscrete_coupling
from ..semidiscrete import chi2_error
from ..stats import compare
from ..validation import check_count
from .models import KeyNet
from .search import augmented_keys, augmented_queries, nearest_key
from .train import fit

__all__ = ["AmortizedSemidiscreteCoupling", "fit_assigner", "AmortizedSDFMStudy", "amortized_sdfm_study"]


@dataclass(frozen=True, repr=False)
class AmortizedSemidiscreteCoupling(SemidiscreteCoupling):
    """SD-FM pairs from a KeyNet trained on the augmented keys of ``fit`` (module docstring).

    Args:
        fit: the semidiscrete fit whose assignment the model amortizes (targets ``fit.y``).
        model: a :class:`~otkit.amips.models.KeyNet` on (d + 1)-dimensional queries (x, 1).
        decode: snap the predicted key to the nearest augmented key (True) or use its first
            d coordinates as the target (False).
    """

    model: torch.nn.Module | None = None
    decode: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.soft:
            raise ValueError("soft=True is not amortized: use decode= instead")
        dim = self.fit.y.shape[1] + 1
        if not isinstance(self.model, KeyNet) or self.model.dim != dim:
            raise ValueError(f"model must be a KeyNet on {dim}-dimensional queries (x, 1)")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "amortized SD (decoded)" if self.decode else "amortized SD (raw)"

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted augmented keys k̂((x, 1)) ``[n, d + 1]`` for ``x: [n, d]``."""
        d = self.fit.y.shape[1]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"x0 must have shape [n, {d}] (the fit's targets), got {tuple(x.shape)}")
        with torch.no_grad():
            return self.model.key(augmented_queries(x).to(next(self.model.parameters()))).to(x)

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """The decoded assignment ``[n]``: the index of the augmented key nearest to k̂((x, 1))."""
        keys = augmented_keys(self.fit.y.to(x), self.fit.g.to(x))
        return nearest_key(self.predict(x), keys)

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
