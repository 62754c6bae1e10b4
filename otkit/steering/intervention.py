"""An intervention: one per-neuron affine map per steered module, and a strength λ.

Rodriguez et al. (2024, AcT; 2025, LinEAS). Module ℓ's output h_ℓ is replaced by
λ T_ℓ(h_ℓ) + (1 − λ) h_ℓ, channel by channel (every token or spatial position gets the same
map). Interventions are plain data: they save to a dict of tensors (loadable with
``torch.load(..., weights_only=True)``) and compose exactly where the composition is affine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from .maps import AffineMap, check_strength

__all__ = ["Intervention", "compose"]

_FORMAT = "otkit.steering.Intervention"
_VERSION = 1


@dataclass(frozen=True, eq=False)
class Intervention:
    """Maps by module name (in model order), a strength λ ∈ [0, 1] and the method's name.

    Attributes:
        maps: ``{module name: AffineMap}``, each map's D equal to that module's channel count.
        strength: λ, the interpolation z' = λ T(z) + (1 − λ) z (0 leaves the model unchanged).
        method: how the maps were estimated ("linear_act", "gaussian", "mean_shift", "lineas").
    """

    maps: dict[str, AffineMap]
    strength: float = 1.0
    method: str = "linear_act"

    def __post_init__(self) -> None:
        if not isinstance(self.maps, dict) or not self.maps:
            raise ValueError("maps must be a non-empty dict {module name: AffineMap}")
        for name, m in self.maps.items():
            if not isinstance(name, str):
                raise TypeError(f"maps keys must be module names (str), got {name!r}")
            if not isinstance(m, AffineMap):
                raise TypeError(f"maps[{name!r}] must be an AffineMap, got {type(m).__name__}")
        object.__setattr__(self, "strength", check_strength(self.strength))
        if not isinstance(self.method, str):
            raise TypeError(f"method must be a str, got {type(self.method).__name__}")

    @property
    def modules(self) -> list[str]:
        """The steered modules' names, in the order of ``maps``."""
        return list(self.maps)

    def with_strength(self, strength: float) -> Intervention:
        """The same maps at strength λ = ``strength``."""
        return replace(self, strength=check_strength(strength))

    def support(self) -> dict[str, torch.Tensor]:
        """``{module: [D] bool}``: the neurons the maps move (ω ≠ 1 or β ≠ 0)."""
        return {name: ~m.is_identity() for name, m in self.maps.items()}

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
           ) -> Intervention:
        """The same intervention with every map on ``device`` in ``dtype``."""
        return replace(self, maps={k: m.to(device, dtype) for k, m in self.maps.items()})

    def state_dict(self) -> dict:
        """A plain dict of tensors, strings and numbers (safe for ``weights_only`` loading)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "method": self.method,
            "strength": self.strength,
            "modules": self.modules,
            "maps": {
                name: {
                    "omega": m.omega.detach().cpu(),
                    "beta": m.beta.detach().cpu(),
                    "low": None if m.low is None else m.low.detach().cpu(),
                    "high": None if m.high is None else m.high.detach().cpu(),
                }
                for name, m in self.maps.items()
            },
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Intervention:
        """Inverse of :meth:`state_dict`."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"state is not a saved {_FORMAT} (missing or wrong 'format' key)")
        if state.get("version") != _VERSION:
            raise ValueError(f"state has version {state.get('version')}, expected {_VERSION}")
        maps = {name: AffineMap(**state["maps"][name]) for name in state["modules"]}
        return cls(maps, float(state["strength"]), str(state["method"]))

    def save(self, path: str | os.PathLike) -> None:
        """Write the intervention to ``path`` (``torch.save`` of :meth:`state_dict`)."""
        torch.save(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device | None = None
             ) -> Intervention:
        """Read an intervention written by :meth:`save` (with ``weights_only=True``)."""
        state = torch.load(path, map_location=map_location, weights_only=True)
        return cls.from_state_dict(state)

    def __repr__(self) -> str:
        moved = sum(int(s.sum()) for s in self.support().values())
        total = sum(m.dim for m in self.maps.values())
        return (
            f"Intervention(method={self.method!r}, strength={self.strength}, "
            f"modules={len(self.maps)}, neurons moved={moved}/{total})"
        )


def compose(first: Intervention, second: Intervention) -> Intervention:
    """The intervention "``second`` after ``first``", at strength 1 (both strengths baked in).

    A module steered by only one of them keeps that map (at its strength). A module steered by
    both gets the composed affine map ω = ω₂ω₁, β = ω₂β₁ + β₂, which is exact only when neither
    map has a support restriction: otherwise the composition is piecewise and not one
    :class:`AffineMap`, and a ValueError says so (nest two :func:`~otkit.steering.steer`
    contexts instead: hooks on one module run in the order they were installed).
    """
    if not isinstance(first, Intervention):
        raise TypeError(f"first must be an Intervention, got {type(first).__name__}")
    if not isinstance(second, Intervention):
        raise TypeError(f"second must be an Intervention, got {type(second).__name__}")
    maps: dict[str, AffineMap] = {}
    for name, m in first.maps.items():
        maps[name] = m.scaled(first.strength)
    for name, m in second.maps.items():
        m2 = m.scaled(second.strength)
        if name not in maps:
            maps[name] = m2
            continue
        m1 = maps[name]
        if m1.dim != m2.dim:
            raise ValueError(
                f"first and second map module {name!r} with different sizes D = {m1.dim} and "
                f"{m2.dim}"
            )
        if m1.low is not None or m2.low is not None:
            raise ValueError(
                f"module {name!r} is steered by both first and second and at least one map is "
                "restricted to its source support: the composition is piecewise affine, not one "
                "AffineMap. Nest two steer() contexts instead."
            )
        w2 = m2.omega.to(m1.omega)
        maps[name] = AffineMap(w2 * m1.omega, w2 * m1.beta + m2.beta.to(m1.beta))
    method = first.method if first.method == second.method else f"{first.method}+{second.method}"
    return Intervention(maps, 1.0, method)
