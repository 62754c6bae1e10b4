"""The recovery study: its bookkeeping, and the claims read from hand-made results."""

import math

import numpy as np
import pytest
import torch

from otkit.odes.fitting import enumerate_fit, r2_score, simulate
from otkit.odes.generator import rk4, vector_field
from otkit.odes.model import ODEModelConfig, train_model
from otkit.odes.study import (
    METHODS,
    RecoveryStudy,
    new_initial_conditions,
    predict,
    read_claims,
    recovery_study,
)

SMALL = ODEModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, d_mlp=64)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    return train_model(SMALL, n_train=200, steps=10, batch_size=16, seed=0, n_points=16)


@pytest.fixture(scope="module")
def study(trained):
    return recovery_study(trained, n_problems=4, noises=(0.0, 0.05), irregularities=(0.0, 1.0),
                          beam=2, seed=3)


def test_the_study_has_every_setting_method_and_problem(study):
    assert study.settings == ((0.0, 0.0), (0.05, 0.0), (0.0, 1.0), (0.05, 1.0))
    assert study.skeleton.shape == study.r2_obs.shape == (4, 3, 4)
    assert (study.seconds > 0).all()
    assert len(study.truth) == 4 and len(study.predicted) == 4
    assert all(len(row) == 3 for row in study.predicted)
    # exact-skeleton recovery is the comparison of the recorded predictions with the truth
    for s in range(4):
        for j in range(3):
            assert list(study.skeleton[s, j]) == [p == t for p, t in
                                                  zip(study.predicted[s][j], study.truth)]
    # enumeration's clean regular-grid result is enumerate_fit's, recomputed here
    en = METHODS.index("enumeration")
    assert study.recovered("skeleton")[0, en].tolist() == study.skeleton[0, en].tolist()


def test_enumeration_at_zero_noise_scores_its_own_refit(trained):
    """predict('enumeration') on a clean trajectory: R² of its fit recomputed by hand."""
    t = torch.linspace(0, 4, 16, dtype=torch.float64)
    c = torch.zeros(1, 7, dtype=torch.float64)
    c[0, 1], c[0, 2] = 1.0, -1.0
    y = rk4(vector_field(c), torch.tensor([0.2], dtype=torch.float64), t[None], 8)[0]
    fit = predict("enumeration", t, y, trained)
    same = enumerate_fit(t, y)
    assert fit.skeleton == same.skeleton == (1, 2)
    assert r2_score(y, simulate(fit.constants, torch.tensor([0.2]), t)[0]) > 0.999


def test_new_initial_conditions_give_valid_solutions():
    c = torch.zeros(3, 7, dtype=torch.float64)
    c[0, 1] = -1.0  # decay: any y0 away from 0 moves
    c[1, 3] = 2.0  # ẏ = 2y³ blows up from most y0: only small |y0| qualify
    c[2, 0] = 0.0
    c[2, 1] = 1e-6  # flat everywhere: no valid y0
    t = torch.linspace(0, 4, 20, dtype=torch.float64)
    y0 = new_initial_conditions(c, t, generator=0, tries=64)
    assert math.isfinite(float(y0[0])) and math.isfinite(float(y0[1]))
    assert math.isnan(float(y0[2]))
    y = rk4(vector_field(c[:2]), y0[:2], t.expand(2, -1), 8)
    assert bool((y.abs() <= 10).all()) and bool((y.std(1) >= 0.05).all())


def _fake(tf_clean, tf_noisy, sy_clean, sy_noisy, seconds=(0.01, 0.001, 0.5)):
    """A study with 2 settings (clean, 5 % noise) and hand-written recovery indicators."""
    n = len(tf_clean)
    r2 = np.zeros((4, 3, n))
    for s, (tf, sy) in enumerate([(tf_clean, sy_clean), (tf_noisy, sy_noisy)] * 2):
        r2[s, 0] = np.where(np.asarray(tf), 0.95, 0.5)
        r2[s, 1] = np.where(np.asarray(sy), 0.95, 0.5)
        r2[s, 2] = 0.95
    sec = np.broadcast_to(np.asarray(seconds)[None, :, None], r2.shape).copy()
    settings = ((0.0, 0.0), (0.05, 0.0), (0.0, 1.0), (0.05, 1.0))
    return RecoveryStudy(settings, METHODS, np.zeros(r2.shape, bool), r2, r2, sec,
                         ((1,),) * n, (), 8)


def test_claims_follow_the_numbers():
    n = 20
    claims = read_claims(_fake([1] * 18 + [0] * 2, [1] * 16 + [0] * 4, [1] * 18 + [0] * 2,
                               [1] * 4 + [0] * 16))
    assert claims["useful"] == "useful" and claims["useful_rate"] == pytest.approx(0.9)
    assert claims["vs_sindy_noise"] == "higher"
    assert claims["vs_sindy_noise_diff"] == pytest.approx(12 / n)
    assert claims["drop_vs_sindy_noise"] == "lower"
    assert claims["speedup"] == pytest.approx(50.0) and claims["speedup_claim"] == "not reproduced"
    assert claims["crossover_skeletons"] == pytest.approx(100 * 0.01 / (0.5 / 63))
    # flipped: SINDy robust, the transformer not
    flipped = read_claims(_fake([1] * 18 + [0] * 2, [1] * 4 + [0] * 16, [1] * 18 + [0] * 2,
                                [1] * 16 + [0] * 4, seconds=(0.001, 0.001, 0.5)))
    assert flipped["vs_sindy_noise"] == "lower" and flipped["drop_vs_sindy_noise"] == "higher"
    assert flipped["speedup_claim"] == "reproduced"
    # a coin-flip recovery rate is not useful; equal methods tie
    half = read_claims(_fake([1, 0] * 10, [1, 0] * 10, [1, 0] * 10, [1, 0] * 10))
    assert half["useful"] == "partial" and half["vs_sindy_noise"] == "tie"


def test_bad_arguments_raise(trained, study):
    with pytest.raises(ValueError, match="method"):
        predict("lasso", torch.arange(5.0), torch.arange(5.0), trained)
    with pytest.raises(ValueError, match="trained"):
        predict("transformer", torch.arange(5.0), torch.arange(5.0))
    with pytest.raises(ValueError, match="n_problems"):
        recovery_study(trained, n_problems=0)
    with pytest.raises(ValueError, match="methods"):
        recovery_study(trained, n_problems=2, methods=("transformer", "lasso"))
    with pytest.raises(ValueError, match="noises"):
        recovery_study(trained, n_problems=2, noises=(-0.1,))
    with pytest.raises(ValueError, match="metric"):
        study.recovered("mse")
    with pytest.raises(ValueError, match="setting"):
        study.index(0.5, 0.0)


def test_merging_puts_problems_side_by_side(study):
    from otkit.odes.study import merge_studies
    both = merge_studies([study, study])
    assert both.r2_new.shape == (4, 3, 8) and len(both.truth) == 8
    assert both.predicted[1][2] == study.predicted[1][2] * 2
    assert np.array_equal(both.r2_obs[:, :, 4:], study.r2_obs)
    with pytest.raises(ValueError, match="studies"):
        merge_studies([])
