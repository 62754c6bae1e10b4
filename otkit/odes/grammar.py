"""The grammar of scalar autonomous ODEs ẏ = f(y): skeletons, prefix tokens and sympy.

Becker, Klein, Neitz, Parascandolo, Kilbertus (2023), "Predicting ordinary differential
equations with transformers" (NSODE), and their 2022 workshop paper: f is a sum of at most three
terms from a fixed library, each with its own constant,

    f(y) = Σ_{k ∈ S} c_k φ_k(y),   φ ∈ {1, y, y², y³, sin y, exp(−y), y/(1 + y²)},   |S| ≤ 3.

A *skeleton* is the sorted tuple S of term indices (63 of them with up to three terms); the
constants are a vector ``c: [7]`` with zeros outside S (so a batch of ODEs is a coefficient
matrix ``[B, 7]`` and f is ``features(y) @ c``).

The model writes f in prefix (Polish) notation with the constant placeholder ``C``:
``c₁ y + c₂ y³`` is ``add mul C y mul C pow3 y``. Sums are left-nested
(``add add t₁ t₂ t₃``) and terms appear in index order, so every skeleton has one token
sequence. :func:`to_sympy` and :func:`from_sympy` go between (skeleton, constants) and sympy
expressions; :func:`simplify` is the readable form of a fitted equation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import sympy
import torch

__all__ = [
    "TERMS",
    "N_TERMS",
    "TOKENS",
    "ARITY",
    "SKELETONS",
    "Y",
    "features",
    "check_skeleton",
    "skeleton_tokens",
    "parse_tokens",
    "to_sympy",
    "from_sympy",
    "simplify",
    "skeleton_name",
]

#: Display names of the library φ_0 … φ_6.
TERMS = ("1", "y", "y^2", "y^3", "sin(y)", "exp(-y)", "y/(1+y^2)")
N_TERMS = len(TERMS)
#: The state variable of every expression.
Y = sympy.Symbol("y", real=True)
_PHI = (sympy.Integer(1), Y, Y**2, Y**3, sympy.sin(Y), sympy.exp(-Y), Y / (1 + Y**2))

#: Arity of each expression token (special tokens PAD/BOS/EOS are not in here).
ARITY = {"add": 2, "mul": 2, "div": 2, "pow2": 1, "pow3": 1, "sin": 1, "exp": 1, "neg": 1,
         "y": 0, "C": 0, "one": 0}
#: The vocabulary: ids 0, 1, 2 are PAD, BOS, EOS, then the expression tokens.
TOKENS = ("<pad>", "<bos>", "<eos>") + tuple(ARITY)

# Prefix tokens of c_k φ_k (C is the constant placeholder).
_TERM_TOKENS = (
    ("C",),
    ("mul", "C", "y"),
    ("mul", "C", "pow2", "y"),
    ("mul", "C", "pow3", "y"),
    ("mul", "C", "sin", "y"),
    ("mul", "C", "exp", "neg", "y"),
    ("mul", "C", "div", "y", "add", "one", "pow2", "y"),
)
_TERM_OF = {tokens: k for k, tokens in enumerate(_TERM_TOKENS)}

#: All skeletons with one to three terms (63), sorted by size then index.
SKELETONS: tuple[tuple[int, ...], ...] = tuple(
    s for r in (1, 2, 3) for s in itertools.combinations(range(N_TERMS), r))


def features(y: torch.Tensor) -> torch.Tensor:
    """The library evaluated at ``y: [...]``: ``[..., 7]`` = (1, y, y², y³, sin y, e^{−y},
    y/(1+y²)). Works for any float tensor shape."""
    return torch.stack([torch.ones_like(y), y, y**2, y**3, torch.sin(y), torch.exp(-y),
                        y / (1 + y**2)], dim=-1)


def check_skeleton(skeleton: object, name: str = "skeleton") -> tuple[int, ...]:
    """A valid skeleton as a sorted tuple: 1 to 3 distinct term indices in [0, 7)."""
    if isinstance(skeleton, (str, bytes)) or not isinstance(skeleton, Sequence):
        raise TypeError(f"{name} must be a sequence of term indices, got {skeleton!r}")
    items = list(skeleton)
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in items):
        raise TypeError(f"{name} must hold integer term indices, got {skeleton!r}")
    s = tuple(sorted(int(k) for k in items))
    if not 1 <= len(s) <= 3 or len(set(s)) != len(s) or s[0] < 0 or s[-1] >= N_TERMS:
        raise ValueError(
            f"{name} must be 1 to 3 distinct term indices in [0, {N_TERMS}) (terms {TERMS}), "
            f"got {skeleton!r}")
    return s


def skeleton_tokens(skeleton: Sequence[int]) -> list[str]:
    """Prefix tokens of a skeleton: ``(1, 3)`` → ``add mul C y mul C pow3 y``."""
    s = check_skeleton(skeleton)
    out = ["add"] * (len(s) - 1)
    for k in s:
        out += _TERM_TOKENS[k]
    return out


def _parse(tokens: Sequence[str], i: int) -> tuple[tuple, int]:
    if i >= len(tokens):
        raise ValueError("tokens end before the expression is complete")
    tok = tokens[i]
    if tok not in ARITY:
        raise ValueError(f"tokens holds {tok!r}, which is not an expression token {tuple(ARITY)}")
    children = []
    j = i + 1
    for _ in range(ARITY[tok]):
        child, j = _parse(tokens, j)
        children.append(child)
    return (tok, *children), j


def _flat(tree: tuple) -> list[str]:
    return [tree[0]] + [t for child in tree[1:] for t in _flat(child)]


def parse_tokens(tokens: Sequence[str]) -> tuple[int, ...]:
    """The skeleton written by prefix ``tokens`` (summands in any order and nesting).

    Raises:
        ValueError naming ``tokens`` when they are not one complete expression, or not a sum of
        1 to 3 distinct library terms.
    """
    tokens = list(tokens)
    try:
        tree, end = _parse(tokens, 0)
    except ValueError as e:
        raise ValueError(f"tokens {tokens} are not a prefix expression: {e}") from None
    if end != len(tokens):
        raise ValueError(f"tokens {tokens} have {len(tokens) - end} token(s) after the expression")
    summands, stack = [], [tree]
    while stack:
        node = stack.pop()
        if node[0] == "add" and tuple(_flat(node)) not in _TERM_OF:
            stack += [node[2], node[1]]
        else:
            summands.append(tuple(_flat(node)))
    ks = []
    for summand in summands:
        if summand not in _TERM_OF:
            raise ValueError(f"tokens {tokens}: {' '.join(summand)} is not a library term c·φ")
        ks.append(_TERM_OF[summand])
    if len(set(ks)) != len(ks) or not 1 <= len(ks) <= 3:
        raise ValueError(f"tokens {tokens} must sum 1 to 3 distinct library terms, got {ks}")
    return tuple(sorted(ks))


def _coefficients(skeleton, constants) -> list:
    s = check_skeleton(skeleton)
    if constants is None:
        return [(k, sympy.Symbol(f"c{k}", real=True)) for k in s]
    c = np.asarray(constants.detach().cpu() if isinstance(constants, torch.Tensor) else constants,
                   dtype=float).ravel()
    if c.shape == (N_TERMS,):
        return [(k, c[k]) for k in s]
    if c.shape == (len(s),):
        return list(zip(s, c))
    raise ValueError(f"constants must have {N_TERMS} or {len(s)} entries, got {c.shape}")


def to_sympy(skeleton: Sequence[int], constants=None) -> sympy.Expr:
    """Σ_{k∈S} c_k φ_k(y) as a sympy expression in :data:`Y`. ``constants`` is ``[7]`` or
    ``[|S|]`` (numbers), or ``None`` for symbols c0 … c6."""
    expr = sympy.Integer(0)
    for k, c in _coefficients(skeleton, constants):
        expr += (c if isinstance(c, sympy.Basic) else sympy.Float(float(c))) * _PHI[k]
    return expr


def from_sympy(expr: sympy.Expr, tol: float = 0.0) -> tuple[tuple[int, ...], np.ndarray]:
    """Decompose ``expr`` (a sympy expression in :data:`Y`) on the library: its skeleton and
    constants ``[7]``. Numeric constants with |c| ≤ ``tol`` are dropped; symbolic constants are
    kept (their constant is reported as nan).

    Raises:
        ValueError naming ``expr`` when a summand is not a constant times a library term, or
        when it has no term or more than three.
    """
    if not isinstance(expr, sympy.Basic):
        raise TypeError(f"expr must be a sympy expression, got {type(expr).__name__}")
    constants = np.zeros(N_TERMS)
    found: dict[int, sympy.Expr] = {}
    for arg in sympy.Add.make_args(sympy.expand(expr)):
        coeff, dependent = arg.as_independent(Y, as_Add=False)
        k = _PHI.index(dependent) if dependent in _PHI else None
        if k is None:  # another form of a library term: c·φ with φ written differently
            k = next((j for j, phi in enumerate(_PHI)
                      if not (ratio := sympy.simplify(arg / phi)).has(Y)), None)
            coeff = ratio if k is not None else coeff
        if k is not None:
            found[k] = found.get(k, 0) + coeff
        else:
            raise ValueError(f"expr has the summand {arg}, not a constant times {TERMS}")
    keep = []
    for k, c in sorted(found.items()):
        if c.is_number:
            if abs(float(c)) > tol:
                keep.append(k)
                constants[k] = float(c)
        else:
            keep.append(k)
            constants[k] = np.nan
    if not 1 <= len(keep) <= 3:
        raise ValueError(f"expr must have 1 to 3 library terms, got {len(keep)}: {expr}")
    return tuple(keep), constants


def simplify(skeleton: Sequence[int] | None, constants, digits: int = 3, tol: float = 1e-3,
             combine: bool = True) -> sympy.Expr:
    """The readable form of a fitted f: constants rounded to ``digits`` significant digits,
    terms with |c| < ``tol`` dropped, then :func:`sympy.simplify` (integers shown as such).
    ``skeleton=None`` takes every nonzero entry of ``constants: [7]`` (e.g. a SINDy fit, which
    may use more than three terms). ``combine=False`` skips :func:`sympy.simplify` (a plain
    sum, easier to read for many terms)."""
    if skeleton is None:
        c = np.asarray(constants, dtype=float).ravel()
        if c.shape != (N_TERMS,):
            raise ValueError(f"constants must have {N_TERMS} entries with skeleton=None, got {c.shape}")
        pairs = [(k, c[k]) for k in np.flatnonzero(c)]
    else:
        pairs = _coefficients(skeleton, constants)
    expr = sympy.Integer(0)
    for k, c in pairs:
        if abs(c) < tol:
            continue
        r = float(f"{c:.{digits}g}")
        expr += (sympy.Integer(int(r)) if r == int(r) else sympy.Float(r, digits)) * _PHI[k]
    return sympy.simplify(expr) if combine else expr


def skeleton_name(skeleton: Sequence[int]) -> str:
    """``(1, 3)`` → ``"y + y^3"`` (terms without constants)."""
    return " + ".join(TERMS[k] for k in check_skeleton(skeleton))
