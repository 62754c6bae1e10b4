"""ODE samplers for a learned velocity field, at a given number of function evaluations (NFE).

A flow model generates by integrating dx/dt = v_θ(x, t) from t = 0 (source) to t = 1. The
budget is counted in evaluations of v_θ, the cost that matters at inference:

* ``"euler"``: x ← x + h v(x, t), one evaluation per step (NFE steps);
* ``"midpoint"``: x ← x + h v(x + (h/2) v(x, t), t + h/2), two per step (NFE/2 steps);
* ``"heun"``: the explicit trapezoid rule, x ← x + (h/2)(k₁ + k₂) with k₁ = v(x, t),
  k₂ = v(x + h k₁, t + h), two per step (NFE/2 steps).

All three are exact for fields that are constant in x (straight, constant-speed paths, which
an optimal-transport flow would have); midpoint and Heun are exact for fields affine in t.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..validation import check_choice, check_count

__all__ = ["SAMPLERS", "integrate", "EVALUATIONS_PER_STEP"]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Evaluations of the velocity per step of each sampler.
EVALUATIONS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}
SAMPLERS = tuple(EVALUATIONS_PER_STEP)


def _steps(nfe: int, method: str) -> int:
    check_choice("method", method, SAMPLERS)
    nfe = check_count("nfe", nfe)
    per_step = EVALUATIONS_PER_STEP[method]
    if nfe % per_step:
        raise ValueError(
            f"nfe must be a multiple of {per_step} for method={method!r} ({per_step} "
            f"evaluations per step), got {nfe}; use method='euler' for odd budgets"
        )
    return nfe // per_step


@torch.no_grad()
def integrate(
    velocity: Velocity,
    x0: torch.Tensor,
    *,
    nfe: int,
    method: str = "euler",
    return_path: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integrate ``dx/dt = velocity(x, t)`` from ``x0: [k, d]`` at t = 0 to t = 1.

    Args:
        velocity: a callable ``(x: [k, d], t: [k]) -> [k, d]``, e.g. a
            :class:`~otkit.flows.VelocityMLP` (put it in eval mode first).
        x0: the starting points (source samples) ``[k, d]``.
        nfe: the number of function evaluations, ≥ 1; a multiple of 2 for midpoint and Heun.
        method: ``"euler"``, ``"midpoint"`` or ``"heun"`` (module docstring).
        return_path: also return the states on the uniform time grid, ``[steps + 1, k, d]``.

    Returns:
        ``x1: [k, d]``, or ``(x1, path)`` with ``return_path``.
    """
    steps = _steps(nfe, method)
    if not isinstance(x0, torch.Tensor) or x0.ndim < 2 or not x0.dtype.is_floating_point:
        raise ValueError("x0 must be a floating-point tensor of shape [k, d]")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 contains NaN or inf values")
    h = 1.0 / steps
    x = x0
    path = [x0] if return_path else None
    for s in range(steps):
        t = torch.full((x.shape[0],), s * h, dtype=x.dtype, device=x.device)
        k1 = velocity(x, t)
        if method == "euler":
            x = x + h * k1
        elif method == "midpoint":
            x = x + h * velocity(x + 0.5 * h * k1, t + 0.5 * h)
        else:
            x = x + 0.5 * h * (k1 + velocity(x + h * k1, t + h))
        if path is not None:
            path.append(x)
    if path is not None:
        return x, torch.stack(path)
    return x
