"""The grammar: every skeleton's prefix tokens go through sympy and come back unchanged."""

import numpy as np
import pytest
import sympy
import torch

from otkit.odes.grammar import (
    SKELETONS,
    TERMS,
    Y,
    features,
    from_sympy,
    parse_tokens,
    simplify,
    skeleton_tokens,
    to_sympy,
)


def test_there_are_63_skeletons_of_up_to_three_terms():
    assert len(SKELETONS) == 7 + 21 + 35 == len(set(SKELETONS))


def _tokens_to_sympy(tokens, constants):
    """An independent prefix evaluator: builds the sympy tree token by token."""
    ops = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
           "pow2": lambda a: a**2, "pow3": lambda a: a**3, "sin": sympy.sin, "exp": sympy.exp,
           "neg": lambda a: -a}
    it, cs = iter(tokens), iter(constants)

    def node():
        tok = next(it)
        if tok == "y":
            return Y
        if tok == "one":
            return sympy.Integer(1)
        if tok == "C":
            return next(cs)
        arity = 1 if tok in ("pow2", "pow3", "sin", "exp", "neg") else 2
        return ops[tok](*[node() for _ in range(arity)])

    return node()


@pytest.mark.parametrize("skeleton", SKELETONS)
def test_prefix_round_trip_through_sympy(skeleton):
    tokens = skeleton_tokens(skeleton)
    symbols = [sympy.Symbol(f"c{k}", real=True) for k in skeleton]
    expr = _tokens_to_sympy(tokens, symbols)
    assert sympy.expand(expr - to_sympy(skeleton)) == 0
    found, _ = from_sympy(expr)
    assert found == skeleton
    assert skeleton_tokens(found) == tokens
    assert parse_tokens(tokens) == skeleton


def test_numbers_round_trip_and_features_match_sympy():
    c = np.array([0.0, 1.5, 0.0, -0.7, 0.0, 0.0, 2.25])
    expr = to_sympy((1, 3, 6), c)
    skeleton, back = from_sympy(expr)
    assert skeleton == (1, 3, 6) and np.allclose(back, c)
    y = torch.linspace(-2, 2, 9, dtype=torch.float64)
    f = sympy.lambdify(Y, expr, "numpy")
    assert np.allclose((features(y) @ torch.tensor(c)).numpy(), f(y.numpy()))
    # a hand-written equation in another form decomposes on the library
    skeleton, back = from_sympy(Y * (1 - Y) * (1 + Y) + 2 * sympy.exp(-Y))
    assert skeleton == (1, 3, 5) and np.allclose(back[[1, 3, 5]], [1, -1, 2])


def test_simplify_rounds_and_drops_small_constants():
    expr = simplify((1, 3, 4), [0, 1.0004, 0, -0.99999, 0, 0, 0][:7] if False else
                    np.array([0, 1.0004, 0, -0.99999, 1e-5, 0, 0]))
    assert sympy.simplify(expr - (Y - Y**3)) == 0


def test_any_summand_order_parses_to_the_same_skeleton():
    assert parse_tokens("add mul C pow3 y add C mul C y".split()) == (0, 1, 3)


@pytest.mark.parametrize("tokens", [
    "add C".split(), "C C".split(), "add C C".split(), "mul C sin sin y".split(),
    "add add C mul C y add mul C pow2 y mul C pow3 y".split(), "foo".split(),
])
def test_bad_tokens_raise(tokens):
    with pytest.raises(ValueError, match="tokens"):
        parse_tokens(tokens)


@pytest.mark.parametrize(("skeleton", "error"), [
    ((), ValueError), ((0, 0), ValueError), ((7,), ValueError), ((0, 1, 2, 3), ValueError),
    ("y", TypeError), ((1.0,), TypeError),
])
def test_bad_skeletons_raise(skeleton, error):
    with pytest.raises(error, match="skeleton"):
        skeleton_tokens(skeleton)


def test_from_sympy_rejects_terms_outside_the_library():
    with pytest.raises(ValueError, match="expr"):
        from_sympy(sympy.cos(Y))
    with pytest.raises(TypeError, match="expr"):
        from_sympy("y")
    assert len(TERMS) == 7


def test_simplify_of_any_support():
    c = np.array([0.5, 1.0, -2.0, 0.0, 0.0, 0.0, 0.0])
    assert sympy.expand(simplify(None, c) - (sympy.Rational(1, 2) + Y - 2 * Y**2)) == 0
    assert simplify(None, np.zeros(7)) == 0
    with pytest.raises(ValueError, match="constants"):
        simplify(None, np.zeros(3))
