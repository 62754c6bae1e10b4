"""The Bloop studies of notebook 12, on small problems, and the reading of fronts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otkit.bloop.study import (
    PAPER_RHO,
    equal_aux_comparison,
    lipschitz_loss,
    lipschitz_mlp,
    main_at_aux,
    mean_front,
    pareto_front,
    quadratic_study,
    quadratic_toy,
    rho_sweep,
    summarize_comparison,
    train_digits,
    train_quadratic,
)

SMALL = {"p": 60, "n": 40, "epochs": 150, "batch_size": 10, "lr": 1e-3}


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_the_toy_is_overparameterized_and_reproducible():
    toy = quadratic_toy(30, 20, seed=3)
    assert toy.x.shape == (20, 30) and toy.y.shape == (20,) and toy.target.shape == (30,)
    assert torch.equal(toy.x, quadratic_toy(30, 20, seed=3).x)
    # n < p: the minimum-norm least-squares solution fits exactly, and the auxiliary
    # minimizer (the target) does not
    theta = torch.linalg.pinv(toy.x) @ toy.y
    assert toy.main_loss(theta) < 1e-20 and toy.main_loss(toy.target) > 1.0
    assert toy.aux_loss(toy.target) == 0.0


@pytest.mark.parametrize("method", ["bloop", "mixed", "dynamic_barrier"])
def test_lambda_zero_is_plain_sgd_on_the_main_loss(method):
    toy = quadratic_toy(20, 12, seed=0)
    theta = train_quadratic(toy, method, 0.0, 0.1, epochs=5, batch_size=4, lr=1e-3, seed=0)
    reference = train_quadratic(toy, "mixed", 0.0, 1.0, epochs=5, batch_size=4, lr=1e-3, seed=0)
    torch.testing.assert_close(theta, reference, rtol=1e-12, atol=1e-12)


def test_quadratic_study_rows_and_the_bloop_advantage():
    rows = quadratic_study([1.0], methods=("bloop", "mixed"), seeds=(0, 1), **SMALL)
    assert len(rows) == 4
    assert set(rows[0]) == {"problem", "method", "lam", "rho", "seed", "main", "aux", "seconds"}
    assert {r["rho"] for r in rows if r["method"] == "bloop"} == {PAPER_RHO["bloop"]}
    for seed in (0, 1):
        bloop, mixed = (next(r for r in rows if r["method"] == m and r["seed"] == seed)
                        for m in ("bloop", "mixed"))
        # Bloop keeps training the main loss; mixed stops at the trade-off
        assert bloop["main"] < mixed["main"] / 10 and bloop["aux"] > mixed["aux"]


def test_lipschitz_loss_is_the_log_of_the_squared_spectral_norms():
    model = lipschitz_mlp((8, 5), inputs=6, classes=3, seed=1)
    expected = sum(2 * math.log(np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)[0])
                   for m in model if isinstance(m, torch.nn.Linear))
    assert lipschitz_loss(model).item() == pytest.approx(expected, rel=1e-5)
    assert torch.equal(model[0].weight, lipschitz_mlp((8, 5), inputs=6, classes=3, seed=1)[0].weight)
    with pytest.raises(ValueError, match="model"):
        lipschitz_loss(torch.nn.ReLU())


def test_train_digits_reports_both_losses_and_accuracies():
    free = train_digits("bloop", 0.0, 0.01, hidden=(16,), epochs=4, lr=3e-3, seed=0)
    assert set(free) == {"main", "aux", "test_main", "train_accuracy", "test_accuracy"}
    assert free["train_accuracy"] > 0.7 and 0.5 < free["test_accuracy"] <= 1
    # a large λ of mixed training shrinks the weights: a much smaller Lipschitz bound
    squeezed = train_digits("mixed", 1.0, 1.0, hidden=(16,), epochs=4, lr=3e-3, seed=0)
    assert squeezed["aux"] < free["aux"] - 1


def test_rho_sweep_reuses_finished_runs():
    rows = quadratic_study([0.5], methods=("bloop",), rho=0.01, seeds=(0,), **SMALL)
    sweep = rho_sweep("quadratic", [0.01, 1.0], lam=0.5, seeds=(0,), reuse=rows, **SMALL)
    assert [r["rho"] for r in sweep] == [0.01, 1.0]
    assert sweep[0] is rows[0]
    assert sweep[1]["lam"] == 0.5 and sweep[1]["method"] == "bloop"


def test_pareto_front_and_interpolation():
    points = [(1.0, 10.0), (2.0, 1.0), (3.0, 2.0), (4.0, 0.1), (2.5, 5.0)]
    assert pareto_front(points) == [(1.0, 10.0), (2.0, 1.0), (4.0, 0.1)]
    assert main_at_aux(points, 2.0) == pytest.approx(1.0)
    assert main_at_aux(points, 3.0) == pytest.approx(math.sqrt(0.1))  # log-linear in aux
    assert math.isnan(main_at_aux(points, 0.5)) and math.isnan(main_at_aux(points, 5.0))


def _rows(method, lams_aux_main, seed):
    return [{"method": method, "lam": lam, "rho": 1.0, "seed": seed, "aux": aux, "main": main}
            for lam, aux, main in lams_aux_main]


def test_equal_aux_comparison_verdicts():
    """Bloop 10× lower than mixed's front at λ = 1 in every seed, a tie at λ = 2 (noise of
    either sign), dominated at λ = 3, and outside the front's range at λ = 4."""
    rows = []
    for seed, noise in enumerate((1.2, 0.8, 1.1)):
        rows += _rows("mixed", [(0.1, 1.0, 100.0), (1.0, 3.0, 1.0)], seed)
        rows += _rows("bloop", [(1.0, 2.0, 1.0 * noise), (2.0, 2.5, 3.16 * noise),
                                (3.0, 3.0, 2.0), (4.0, 10.0, 0.5)], seed)
    rows[0]["main"] = 99.0  # not all seeds alike
    out = {r["lam"]: r for r in equal_aux_comparison(rows, "bloop", "mixed")}
    assert out[1.0]["verdict"] == "lower" and 8 < out[1.0]["ratio"] < 12
    # only the seed at 0.8 beats the mixed run (3, 1) on both losses, without interpolation
    assert out[1.0]["dominates"] == 1 and out[1.0]["dominated"] == 0
    assert out[1.0]["bracket"] == pytest.approx((1.0, 3.0))
    assert out[2.0]["verdict"] == "tie"
    assert out[3.0]["verdict"] == "higher" and out[3.0]["dominated"] == 3
    assert out[4.0]["seeds"] == 0 and out[4.0]["verdict"] is None and math.isnan(out[4.0]["ratio"])
    summary = summarize_comparison(list(out.values()))
    assert (summary["lower"], summary["higher"], summary["tie"], summary["incomparable"]) == (1, 1, 1, 1)
    assert summary["at_max"] == 1.0 and summary["dominated"] == 3 and summary["dominates"] == 1
    # another score read on the same fronts: the test loss
    for r in rows:
        r["test_main"] = 2 * r["main"] if r["method"] == "bloop" else r["main"]
    tested = equal_aux_comparison(rows, "bloop", "mixed", score="test_main")
    assert tested[0]["ratio"] == pytest.approx(out[1.0]["ratio"] / 2)
    front = mean_front(rows, "bloop")
    assert [f["lam"] for f in front] == [1.0, 2.0, 3.0, 4.0] and front[2]["main"] == pytest.approx(2.0)


@pytest.mark.parametrize(("call", "error", "name"), [
    (lambda: quadratic_study([1.0], methods=("sgd",), seeds=(0,), **SMALL), ValueError, "methods"),
    (lambda: quadratic_study([], seeds=(0,), **SMALL), ValueError, "lams"),
    (lambda: quadratic_study([-1.0], seeds=(0,), **SMALL), ValueError, "lams"),
    (lambda: quadratic_study([1.0], seeds=(), **SMALL), ValueError, "seeds"),
    (lambda: quadratic_study([1.0], rho={"bloop": 0.1}, seeds=(0,), **SMALL), ValueError, "rho"),
    (lambda: quadratic_study([1.0], methods=("bloop",), rho=0.0, seeds=(0,), **SMALL),
     ValueError, "rho"),
    (lambda: train_quadratic(quadratic_toy(10, 8), "bloop", 1.0, 0.1, batch_size=9),
     ValueError, "batch_size"),
    (lambda: rho_sweep("mnist", [0.1], lam=1.0), ValueError, "problem"),
    (lambda: rho_sweep("quadratic", [], lam=1.0), ValueError, "rhos"),
    (lambda: equal_aux_comparison(_rows("bloop", [(1.0, 1.0, 1.0)], 0), "bloop", "mixed"),
     ValueError, "baseline"),
])
def test_bad_arguments_raise_naming_them(call, error, name):
    with pytest.raises(error, match=name):
        call()
