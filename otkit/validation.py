"""Checks of user input shared by every solver: clear errors that name the argument.

Bad input must fail loudly at the door, never as a NaN deep inside a solver.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Collection

import torch

__all__ = [
    "HALF_DTYPES",
    "check_cloud",
    "check_clouds",
    "check_cloud_pair",
    "check_weights",
    "check_nonnegative_weights",
    "check_positive",
    "check_tau",
    "check_probability",
    "check_count",
    "check_nonnegative",
    "check_choice",
    "check_generator",
    "check_equal_mass",
    "renamed_keyword",
    "check_rho",
    "check_epsilon_scaling",
    "check_init",
]


#: Half precision: 8 (bfloat16) or 11 (float16) bits of mantissa cannot resolve the potentials'
#: updates, so Sinkhorn stalls near 1e-2 marginal error; the solvers refuse these dtypes.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def check_cloud(name: str, x: object, *, allow_half: bool = False) -> torch.Tensor:
    """A point cloud: a finite floating-point tensor of shape ``[n, d]`` with n ≥ 1.

    float16 and bfloat16 are refused (:data:`HALF_DTYPES`) unless ``allow_half`` (for code
    that computes its statistics in higher precision itself, such as activation steering).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [n, d], got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {x.dtype}; pass floating point points, e.g. {name}.float()"
        )
    if x.dtype in HALF_DTYPES and not allow_half:
        raise TypeError(
            f"{name} has dtype {x.dtype}: half precision cannot resolve the dual updates (the "
            f"solve would stall near 1e-2 marginal error); pass {name}.float() (float32) or "
            f"{name}.double()"
        )
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [n, d], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one point")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has zero features: shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def check_cloud_pair(
    x_name: str, x: object, y_name: str, y: object, *, same_dtype: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two clouds ``x: [n, d]``, ``y: [m, d]`` under the names the caller's arguments have
    (e.g. ``"x_shard"`` and ``"y"``): each a :func:`check_cloud`, of one dimension d, on one
    device and, by default, of one dtype."""
    x = check_cloud(x_name, x)
    y = check_cloud(y_name, y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same dimension d, got {x_name}: "
            f"{tuple(x.shape)}, {y_name}: {tuple(y.shape)}"
        )
    if x.device != y.device:
        raise ValueError(
            f"{x_name} is on {x.device} but {y_name} is on {y.device}: move both to one device"
        )
    if same_dtype and x.dtype != y.dtype:
        raise TypeError(
            f"{x_name} has dtype {x.dtype} but {y_name} has {y.dtype}: cast both to one dtype"
        )
    return x, y


def check_clouds(
    x: object, y: object, *, same_dtype: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two clouds ``x: [n, d]``, ``y: [m, d]`` on one device (and of one dtype, by default)."""
    return check_cloud_pair("x", x, "y", y, same_dtype=same_dtype)


def check_nonnegative_weights(
    name: str, w: object, size: int, like: torch.Tensor
) -> torch.Tensor:
    """A ``[size]`` floating-point tensor of finite, non-negative weights on ``like``'s device,
    cast to its dtype (its total may be 0: callers decide whether that is allowed)."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [{size}] or None")
    if not w.is_floating_point():
        raise TypeError(f"{name} has dtype {w.dtype}; pass floating point weights")
    if w.shape != (size,):
        raise ValueError(f"{name} must have shape [{size}], got {tuple(w.shape)}")
    if w.device != like.device:
        raise ValueError(f"{name} is on {w.device} but the points are on {like.device}")
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or inf values")
    if (w < 0).any():
        raise ValueError(f"{name} has negative entries: weights must be non-negative")
    return w.to(like.dtype)


def check_weights(
    name: str, w: object, size: int, like: torch.Tensor, *, normalize: bool = False
) -> torch.Tensor:
    """Weights of a cloud: ``None`` (uniform) or a ``[size]`` non-negative tensor of positive mass."""
    if w is None:
        return torch.full((size,), 1.0 / size, dtype=like.dtype, device=like.device)
    w = check_nonnegative_weights(name, w, size, like)
    mass = w.sum()
    if mass <= 0:
        raise ValueError(f"{name} has zero total mass: give at least one positive weight")
    return w / mass if normalize else w


def check_equal_mass(a: torch.Tensor, b: torch.Tensor) -> None:
    """Balanced OT moves all the mass: ``a`` and ``b`` must sum to the same total."""
    mass_a, mass_b = a.sum().item(), b.sum().item()
    if abs(mass_a - mass_b) > 1e-5 * max(mass_a, mass_b):
        raise ValueError(
            f"balanced OT needs a and b of equal total mass, got {mass_a:.6g} and "
            f"{mass_b:.6g}: normalize them, or relax the marginals with finite rho_a/rho_b"
        )


def check_positive(name: str, value: object) -> float:
    """A finite number > 0 (a Python number or a one-element tensor)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_tau(name: str, value: object) -> float:
    """A marginal relaxation τ = ρ / (ρ + ε) in (0, 1]; 1 is a hard (balanced) constraint."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in (0, 1], got {type(value).__name__}")
    if not (0.0 < value <= 1.0):
        raise ValueError(
            f"{name} must lie in (0, 1] (1 = balanced; tau = rho / (rho + epsilon)), got {value}"
        )
    return float(value)


def check_probability(name: str, value: object, *, closed: bool = False) -> float:
    """A number in (0, 1) (or [0, 1] with ``closed``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    ok = 0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return float(value)


def check_count(name: str, value: object, *, minimum: int = 1) -> int:
    """An integer ≥ ``minimum`` (a count of points, steps, bins...)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_nonnegative(name: str, value: object) -> float:
    """A finite number ≥ 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: Collection) -> object:
    """One of ``choices`` (a string option such as a backend, a mode or a schedule name)."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set or dict
        ok = False
    # True == 1 in Python: a bool passes only where a bool is listed
    if ok and isinstance(value, bool) and not any(isinstance(c, bool) for c in choices):
        raise TypeError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    if not ok:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def check_generator(
    generator: torch.Generator | int | None, seed: int | None = None
) -> torch.Generator | None:
    """The CPU ``torch.Generator`` to draw from: ``generator`` (a generator or an int seed), or
    a fresh one seeded with ``seed``; ``None`` (torch's global generator) when neither is given.

    otkit's convention: a function that *draws* takes ``generator``; a function that runs a
    whole reproducible experiment (a study, a training run) takes an int ``seed``.
    """
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if generator is None and seed is None:
        return None
    value = seed if seed is not None else generator
    if isinstance(value, torch.Generator):
        if value.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU torch.Generator (samplers draw on the CPU and then "
                f"move the result to `device`), got one on {value.device}"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"generator must be a torch.Generator or an int seed, got {type(value).__name__}"
        )
    return torch.Generator().manual_seed(value)


def renamed_keyword(
    function: str, old: str, old_value: object, new: str, new_value: object, default: object
) -> object:
    """The value of ``function``'s keyword ``new``, also accepted under its former name ``old``
    (with a :class:`DeprecationWarning`); giving both is a ``TypeError``.

    ``old_value`` is None when the old name was not used; ``new_value`` equal to ``default``
    counts as not given.
    """
    if old_value is None:
        return new_value
    if new_value is not default and new_value != default:
        raise TypeError(f"{function}() got both {new}= and its old name {old}=: give {new} only")
    warnings.warn(
        f"{function}(..., {old}=) is now {function}(..., {new}=); the old name will go",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def check_rho(name: str, value: object) -> float:
    """A KL marginal penalty ρ > 0 in cost units (the weight of ρ KL(P1 | a) in the
    objective); ``math.inf`` is a hard (balanced) constraint."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a number > 0 (math.inf = balanced), got {type(value).__name__}"
        )
    value = float(value)
    if not value > 0:  # NaN included
        raise ValueError(
            f"{name} must be a number > 0, the KL penalty in cost units (math.inf = "
            f"balanced), got {value}"
        )
    return value


def check_epsilon_scaling(value: object) -> float | None:
    """An ε-scaling factor q in (0, 1), or None (no scaling)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"epsilon_scaling must be a factor in (0, 1), got {value!r}")
    return float(value)


def check_init(
    init: object, n: int, m: int, like: torch.Tensor, names: tuple[str, str] = ("f", "g")
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A warm start ``(f [n], g [m])`` of finite potentials, cast to ``like``'s dtype and device."""
    if init is None:
        return None
    if not (isinstance(init, (tuple, list)) and len(init) == 2):
        raise TypeError(f"init must be a pair ({names[0]}, {names[1]}) of potential tensors "
                        f"[{n}], [{m}]")
    checked = []
    for k, (t, size) in enumerate(zip(init, (n, m))):
        name = f"init[{k}] ({names[k]})"
        if not isinstance(t, torch.Tensor) or t.shape != (size,):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must be a tensor of shape [{size}], got {got}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf values")
        checked.append(t.to(like))
    return checked[0], checked[1]
