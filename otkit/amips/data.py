"""Synthetic MIPS problems: keys from anisotropic Gaussian clusters, queries from a shifted law.

Keys (m of them, in R^d): C cluster centres c_a ~ N(0, I_d); cluster a draws
k = c_a + A_a z, z ~ N(0, I_d), with A_a = U_a diag(σ_a) a random rotation U_a times scales
σ_a log-uniform in [0.05, 1] (strongly anisotropic). Queries: a Gaussian mixture on the same
number of centres, each query centre c'_a = c_a + δ u_a (u_a a random unit vector, δ = ``shift``),
with isotropic spread ``query_scale``: the query law is not the key law, as in retrieval.

A real set (:func:`digits_problem`): the keys are the 1,438 training images of scikit-learn's
8×8 digits (``[1438, 64]`` in [-1, 1]); the queries are held-out digits (the test split) plus
isotropic noise of spread ``query_scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data.samplers import digits
from ..validation import check_count, check_positive

__all__ = ["MipsProblem", "cluster_problem", "digits_problem"]


@dataclass(frozen=True)
class MipsProblem:
    """``keys: [m, d]`` and the query law (``query_centres: [C, d]``, ``query_scale``)."""

    keys: torch.Tensor
    query_centres: torch.Tensor
    query_scale: float

    @property
    def dim(self) -> int:
        return self.keys.shape[1]

    def queries(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, d]`` queries from the shifted mixture."""
        n = check_count("n", n)
        pick = torch.randint(self.query_centres.shape[0], (n,), generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.keys.dtype)
        return self.query_centres[pick] + self.query_scale * noise


def cluster_problem(
    m: int, d: int = 32, *, clusters: int = 16, shift: float = 1.0, query_scale: float = 0.5,
    seed: int = 0, dtype: torch.dtype = torch.float32,
) -> MipsProblem:
    """The problem of the module docstring (reproducible from ``seed``)."""
    m = check_count("m", m)
    d = check_count("d", d, minimum=2)
    clusters = check_count("clusters", clusters)
    shift = float(shift)
    if shift < 0 or not math.isfinite(shift):
        raise ValueError(f"shift must be >= 0, got {shift}")
    query_scale = check_positive("query_scale", query_scale)
    g = torch.Generator().manual_seed(int(seed))
    centres = torch.randn(clusters, d, generator=g, dtype=torch.float64)
    label = torch.randint(clusters, (m,), generator=g)
    keys = torch.empty(m, d, dtype=torch.float64)
    for a in range(clusters):
        rot, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        scales = torch.exp(torch.empty(d, dtype=torch.float64).uniform_(math.log(0.05), 0.0, generator=g))
        idx = (label == a).nonzero().squeeze(1)
        z = torch.randn(idx.numel(), d, generator=g, dtype=torch.float64)
        keys[idx] = centres[a] + (z * scales) @ rot.T
    u = torch.randn(clusters, d, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    return MipsProblem(keys.to(dtype), (centres + shift * u).to(dtype), query_scale)


def digits_problem(*, query_scale: float = 0.5, dtype: torch.dtype = torch.float32) -> MipsProblem:
    """Keys: the training split of the 8×8 digits (:func:`otkit.data.samplers.digits`, split
    seed 0), ``[1438, 64]``; query centres: the 359 held-out test digits, spread
    ``query_scale``. The same keys for every seed (seeds vary the queries and the networks)."""
    query_scale = check_positive("query_scale", query_scale)
    return MipsProblem(digits(split="train", seed=0, dtype=dtype),
                       digits(split="test", seed=0, dtype=dtype), query_scale)
