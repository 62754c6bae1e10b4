"""Generated training and test ODEs: random skeletons and constants, batched RK4, blow-up
rejection, irregular sampling and noise (Becker et al. 2023, section 3 "data generation").

For a batch of B scalar ODEs ẏ = Σ_k C_bk φ_k(y) (coefficient matrix ``C: [B, 7]``,
:func:`otkit.odes.grammar.features`), :func:`rk4` integrates all of them at once in torch with
the classical fourth-order Runge–Kutta scheme

    k₁ = f(y), k₂ = f(y + h k₁/2), k₃ = f(y + h k₂/2), k₄ = f(y + h k₃),
    y ← y + h (k₁ + 2k₂ + 2k₃ + k₄)/6,

taking ``substeps`` equal steps between consecutive sample times of each row (times may differ
per row: irregular sampling). :func:`generate` rejects solutions that leave |y| ≤ ``blowup`` or
are not finite (blow-ups), near-constant ones (std < ``min_std``: nothing to identify) and
stiff ones, where ``substeps`` and 2 · ``substeps`` steps per interval differ by more than 1e-4
(the finer solution is kept).

Sampling: ``irregularity`` ρ ∈ [0, 1] mixes the regular grid with sorted uniform times,
t = (1 − ρ) t_regular + ρ t_uniform (endpoints 0 and T kept), so ρ = 0 is a regular grid and
ρ = 1 fully random times. Noise: y_obs = y + σ · rms(y) · ε, ε ~ N(0, 1), with rms over the
trajectory (σ = 0.05 is "5 % noise").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..validation import check_count, check_generator, check_nonnegative, check_positive
from .grammar import N_TERMS, check_skeleton, features

__all__ = ["ODEBatch", "rk4", "vector_field", "sample_times", "add_noise", "sample_equations",
           "generate"]


@dataclass(frozen=True)
class ODEBatch:
    """B generated problems.

    Attributes:
        skeletons: B sorted tuples of term indices.
        coefficients: ``[B, 7]`` constants (zero outside the skeleton).
        t: ``[B, P]`` sample times (t[:, 0] = 0, t[:, -1] = T).
        y_clean: ``[B, P]`` the RK4 solution at ``t``.
        y: ``[B, P]`` the observed values (``y_clean`` plus noise).
        noise: σ of :func:`add_noise`.
    """

    skeletons: tuple[tuple[int, ...], ...]
    coefficients: torch.Tensor
    t: torch.Tensor
    y_clean: torch.Tensor
    y: torch.Tensor
    noise: float

    def __len__(self) -> int:
        return len(self.skeletons)

    @property
    def y0(self) -> torch.Tensor:
        """``[B]`` the initial values y(0)."""
        return self.y_clean[:, 0]


def vector_field(coefficients: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """f(y) = features(y) · C row by row, for ``coefficients: [B, 7]`` and ``y: [B]``."""
    return lambda y: (features(y) * coefficients).sum(-1)


def rk4(f: Callable[[torch.Tensor], torch.Tensor], y0: torch.Tensor, t: torch.Tensor,
        substeps: int = 4) -> torch.Tensor:
    """Solve ẏ = f(y) for ``y0: [B]`` at the times ``t: [B, P]`` (increasing along each row;
    row b starts at t[b, 0]). ``f`` maps ``[B]`` to ``[B]``. Returns ``[B, P]`` (column 0 is
    y0). Once a row is non-finite it stays so (the caller rejects it)."""
    if not isinstance(y0, torch.Tensor) or y0.ndim != 1:
        raise ValueError(f"y0 must be a tensor [B], got {getattr(y0, 'shape', y0)!r}")
    if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[0] != y0.shape[0]:
        raise ValueError(f"t must be a tensor [B, P] with B = {y0.shape[0]}, got "
                         f"{tuple(getattr(t, 'shape', ()))}")
    if t.shape[1] > 1 and bool((t.diff(dim=1) < 0).any()):
        raise ValueError("t must be non-decreasing along each row")
    check_count("substeps", substeps)
    y = y0.to(t.dtype)
    out = [y]
    for i in range(t.shape[1] - 1):
        h = (t[:, i + 1] - t[:, i]) / substeps
        for _ in range(substeps):
            k1 = f(y)
            k2 = f(y + h * k1 / 2)
            k3 = f(y + h * k2 / 2)
            k4 = f(y + h * k3)
            y = y + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        out.append(y)
    return torch.stack(out, dim=1)


def sample_times(n: int, n_points: int, t_max: float, irregularity: float | torch.Tensor = 0.0,
                 *, generator: torch.Generator | int | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``[n, n_points]`` sample times on [0, t_max]: (1 − ρ) · regular grid + ρ · sorted
    uniform draws, with the endpoints 0 and t_max kept. ``irregularity`` ρ is a number in
    [0, 1] or a tensor ``[n]`` of them."""
    check_count("n", n)
    check_count("n_points", n_points, minimum=2)
    check_positive("t_max", t_max)
    rho = torch.as_tensor(irregularity, dtype=dtype)
    if rho.ndim == 0:
        rho = rho.expand(n)
    if rho.shape != (n,) or not bool(((rho >= 0) & (rho <= 1)).all()):
        raise ValueError(f"irregularity must be a number in [0, 1] or [n] of them, got {irregularity!r}")
    gen = check_generator(generator)
    regular = torch.linspace(0, t_max, n_points, dtype=dtype).expand(n, n_points)
    inner = torch.rand(n, n_points - 2, generator=gen, dtype=dtype).sort(dim=1).values * t_max
    uniform = torch.cat([torch.zeros(n, 1, dtype=dtype), inner,
                         torch.full((n, 1), float(t_max), dtype=dtype)], dim=1)
    return (1 - rho[:, None]) * regular + rho[:, None] * uniform


def add_noise(y: torch.Tensor, noise: float, *, generator: torch.Generator | int | None = None
              ) -> torch.Tensor:
    """y + σ · rms(y) · ε row by row (``y: [B, P]``, ε ~ N(0, 1), σ = ``noise``)."""
    sigma = check_nonnegative("noise", noise)
    if not isinstance(y, torch.Tensor) or y.ndim != 2:
        raise ValueError(f"y must be a tensor [B, P], got {getattr(y, 'shape', y)!r}")
    if sigma == 0:
        return y.clone()
    gen = check_generator(generator)
    rms = y.pow(2).mean(dim=1, keepdim=True).sqrt()
    return y + sigma * rms * torch.randn(y.shape, generator=gen, dtype=y.dtype)


def sample_equations(n: int, *, max_terms: int = 3, coef_range: tuple[float, float] = (0.2, 2.0),
                     skeletons: tuple[tuple[int, ...], ...] | None = None,
                     generator: torch.Generator | int | None = None,
                     dtype: torch.dtype = torch.float64
                     ) -> tuple[tuple[tuple[int, ...], ...], torch.Tensor]:
    """n random equations: a skeleton (number of terms uniform in 1 … ``max_terms``, then the
    terms uniformly; or uniform over ``skeletons``) and constants with |c| uniform in
    ``coef_range`` and a random sign. Returns (skeletons, coefficients ``[n, 7]``)."""
    check_count("n", n)
    check_count("max_terms", max_terms)
    if max_terms > 3:
        raise ValueError(f"max_terms must be at most 3 (the grammar's limit), got {max_terms}")
    lo, hi = coef_range
    if not 0 < lo <= hi:
        raise ValueError(f"coef_range must be (low, high) with 0 < low <= high, got {coef_range}")
    gen = check_generator(generator)
    if skeletons is not None:
        skeletons = tuple(check_skeleton(s, "skeletons") for s in skeletons)
        if not skeletons:
            raise ValueError("skeletons must not be empty")
        picks = torch.randint(len(skeletons), (n,), generator=gen)
        chosen = tuple(skeletons[int(i)] for i in picks)
    else:
        sizes = torch.randint(1, max_terms + 1, (n,), generator=gen)
        orders = torch.rand(n, N_TERMS, generator=gen).argsort(dim=1)
        chosen = tuple(tuple(sorted(orders[i, : int(sizes[i])].tolist())) for i in range(n))
    mask = torch.zeros(n, N_TERMS, dtype=dtype)
    for i, s in enumerate(chosen):
        mask[i, list(s)] = 1
    mag = lo + (hi - lo) * torch.rand(n, N_TERMS, generator=gen, dtype=dtype)
    sign = torch.where(torch.rand(n, N_TERMS, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
    return chosen, mask * mag * sign


def generate(n: int, *, n_points: int = 32, t_max: float = 4.0,
             y0_range: tuple[float, float] = (-2.0, 2.0), noise: float = 0.0,
             irregularity: float | tuple[float, float] = 0.0, max_terms: int = 3,
             coef_range: tuple[float, float] = (0.2, 2.0),
             skeletons: tuple[tuple[int, ...], ...] | None = None, blowup: float = 10.0,
             min_std: float = 0.05, substeps: int = 4,
             generator: torch.Generator | int | None = None, max_tries: int = 50) -> ODEBatch:
    """n problems: random equations (:func:`sample_equations`), y0 uniform in ``y0_range``,
    times from :func:`sample_times`, RK4 solutions, rejection of blow-ups (non-finite or
    |y| > ``blowup``) and of near-constant solutions (std < ``min_std``), then noise
    (:func:`add_noise`). ``irregularity`` is ρ of :func:`sample_times`, or a range (low, high)
    to draw ρ uniformly per problem. Draws in rounds of 2n candidates until n are accepted.

    Raises:
        ValueError naming the argument for bad sizes, ranges or levels; RuntimeError when
        ``max_tries`` rounds do not give n accepted problems.
    """
    check_count("n", n)
    check_positive("blowup", blowup)
    check_nonnegative("min_std", min_std)
    check_nonnegative("noise", noise)
    if not y0_range[0] <= y0_range[1]:
        raise ValueError(f"y0_range must be (low, high) with low <= high, got {y0_range}")
    gen = check_generator(generator)
    if isinstance(irregularity, tuple):
        if len(irregularity) != 2 or not 0 <= irregularity[0] <= irregularity[1] <= 1:
            raise ValueError(f"irregularity must be in [0, 1] or a range (low, high) inside it, "
                             f"got {irregularity!r}")
    elif isinstance(irregularity, bool) or not isinstance(irregularity, (int, float)):
        raise TypeError(f"irregularity must be a number or a (low, high) tuple, got {irregularity!r}")
    kept: list = []
    for _ in range(max_tries):
        m = 2 * n
        sk, coef = sample_equations(m, max_terms=max_terms, coef_range=coef_range,
                                    skeletons=skeletons, generator=gen)
        y0 = y0_range[0] + (y0_range[1] - y0_range[0]) * torch.rand(m, generator=gen,
                                                                    dtype=torch.float64)
        if isinstance(irregularity, tuple):
            lo, hi = irregularity
            r = lo + (hi - lo) * torch.rand(m, generator=gen, dtype=torch.float64)
        else:
            r = float(irregularity)
        t = sample_times(m, n_points, t_max, r, generator=gen)
        with torch.no_grad():
            coarse = rk4(vector_field(coef), y0, t, substeps)
            y = rk4(vector_field(coef), y0, t, 2 * substeps)
        ok = torch.isfinite(y).all(1) & (y.abs() <= blowup).all(1)
        ok &= torch.nan_to_num((y - coarse).abs().amax(1), nan=math.inf) <= 1e-4
        ok &= torch.nan_to_num(y.std(dim=1), nan=0.0) >= min_std
        for i in torch.nonzero(ok).flatten().tolist():
            kept.append((sk[i], coef[i], t[i], y[i]))
        if len(kept) >= n:
            break
    else:
        raise RuntimeError(f"only {len(kept)} of {n} problems passed the blow-up and flatness "
                           f"checks in {max_tries} rounds: widen blowup or lower min_std")
    kept = kept[:n]
    y_clean = torch.stack([k[3] for k in kept])
    return ODEBatch(tuple(k[0] for k in kept), torch.stack([k[1] for k in kept]),
                    torch.stack([k[2] for k in kept]), y_clean,
                    add_noise(y_clean, noise, generator=gen), float(noise))
