"""otkit's ProgOT against OTT-JAX's (values stored with provenance; OTT is absent from CI).

tests/fixtures/ott/generate.py ran OTT-JAX 0.6.0 once and stored its inputs and outputs; the
live versions of these checks (tests/progot/test_solver.py) run where ott-jax is installed.
OTT's cost is ‖x − y‖², twice otkit's, so it ran at twice otkit's ε.
"""

import torch
from _ott_references import ott_references, tensor

from otkit.progot import ALPHA_SCHEDULES, alpha_schedule, progot


def test_alpha_schedules_match_ott_jax():
    stored = ott_references()["alpha_schedules"]
    assert {key.split("-")[0] for key in stored} == set(ALPHA_SCHEDULES)
    for key, theirs in stored.items():
        kind, steps = key.split("-")
        torch.testing.assert_close(alpha_schedule(kind, int(steps)), tensor(theirs),
                                   rtol=1e-6, atol=1e-7)


def test_two_steps_match_ott_jax_progot():
    """K = 2, where OTT's fit loop (displacing from x⁽⁰⁾ while fitting) agrees with the paper."""
    ref = ott_references()["progot_two_steps"]
    x, y, x_test = tensor(ref["x"]), tensor(ref["y"]), tensor(ref["x_test"])
    ours = progot(x, y, alpha=ref["alpha"], epsilon=ref["epsilons"], tol=1e-8, max_iter=20_000)
    mapped = ours.transport(x_test)
    torch.testing.assert_close(mapped, tensor(ref["transport"]), rtol=0, atol=1e-5)
    assert (mapped - x_test).norm(dim=1).mean() > 1.0  # a real displacement, not the identity
