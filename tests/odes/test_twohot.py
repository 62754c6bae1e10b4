"""Two-hot constants (NSODE): the encoding against linear interpolation, the constant head, the
constant-aware methods of the study."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from otkit.odes.fitting import refine, select
from otkit.odes.generator import generate
from otkit.odes.grammar import TOKENS, skeleton_tokens
from otkit.odes.model import (
    ODEModelConfig,
    constant_bins,
    encode_constants,
    encode_tokens,
    predict_constants,
    train_model,
    two_hot_decode,
    two_hot_encode,
)
from otkit.odes.study import (
    TRANSFORMER_METHODS,
    RecoveryStudy,
    join_methods,
    predict,
    read_constant_claims,
    recovery_study,
)

SMALL = ODEModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, d_mlp=64)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    return train_model(SMALL, n_train=300, steps=40, batch_size=32, lr=5e-3, seed=0)


def test_two_hot_is_linear_interpolation_and_round_trips():
    bins = constant_bins(41, 2.0)
    values = torch.cat([bins, torch.empty(200, dtype=torch.float64).uniform_(-2, 2),
                        torch.tensor([-2.0, 2.0, 1e-9, -1e-9], dtype=torch.float64)])
    w = two_hot_encode(values, bins)
    assert w.shape == (values.numel(), 41)
    # reference: weight j is the hat function of bin j, i.e. np.interp of the j-th unit vector
    eye = np.eye(41)
    ref = np.stack([np.interp(values.numpy(), bins.numpy(), eye[j]) for j in range(41)], -1)
    assert np.allclose(w.numpy(), ref, atol=1e-12)
    assert bool((w >= 0).all()) and torch.allclose(w.sum(-1), torch.ones(len(values), dtype=torch.float64))
    nz = [torch.nonzero(row).flatten().tolist() for row in w]
    assert all(len(ix) <= 2 and (len(ix) < 2 or ix[1] == ix[0] + 1) for ix in nz)
    assert torch.allclose(two_hot_decode(w, bins), values, rtol=0, atol=1e-12)
    # any shape, uneven bins
    uneven = torch.tensor([-3.0, -0.5, 0.0, 0.1, 4.0], dtype=torch.float64)
    x = torch.tensor([[-3.0, -1.0], [0.05, 3.9]], dtype=torch.float64)
    assert torch.allclose(two_hot_decode(two_hot_encode(x, uneven), uneven), x, atol=1e-12)


def test_two_hot_decode_is_the_expectation():
    bins = constant_bins(5, 1.0)
    p = F.softmax(torch.randn(3, 5, dtype=torch.float64), -1)
    assert torch.allclose(two_hot_decode(p, bins), (p * bins).sum(-1))


def test_two_hot_bad_inputs_raise():
    bins = constant_bins(5, 1.0)
    with pytest.raises(ValueError, match="values"):
        two_hot_encode(torch.tensor([1.5]), bins)
    with pytest.raises(ValueError, match="values"):
        two_hot_encode(torch.tensor([-1.0001]), bins)
    with pytest.raises(ValueError, match="values"):
        two_hot_encode(torch.tensor([float("nan")]), bins)
    with pytest.raises(ValueError, match="bins"):
        two_hot_encode(torch.tensor([0.0]), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="bins"):
        two_hot_encode(torch.tensor([0.0]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="bins"):
        two_hot_decode(torch.ones(1, 2) / 2, torch.zeros(2, 1))
    with pytest.raises(ValueError, match="probs"):
        two_hot_decode(torch.ones(4) / 4, bins)
    with pytest.raises(ValueError, match="probs"):
        two_hot_decode(torch.tensor([0.5, 0.5, 0.5, -0.5, 0.0]), bins)
    with pytest.raises(ValueError, match="probs"):
        two_hot_decode(torch.full((5,), 0.3), bins)
    with pytest.raises(ValueError, match="n_bins"):
        constant_bins(1, 1.0)
    with pytest.raises(ValueError, match="constant_range"):
        ODEModelConfig(constant_range=0.0)
    with pytest.raises(ValueError, match="constant_range"):
        train_model(ODEModelConfig(constant_range=1.0), n_train=50, steps=1)
    with pytest.raises(ValueError, match="constant_weight"):
        train_model(SMALL, n_train=50, steps=1, constant_weight=-1.0)


def test_constants_sit_at_their_C_tokens():
    skeletons = [(1, 3), (0, 4, 6), (5,)]
    coef = torch.zeros(3, 7, dtype=torch.float64)
    coef[0, [1, 3]] = torch.tensor([0.5, -1.5], dtype=torch.float64)
    coef[1, [0, 4, 6]] = torch.tensor([1.0, 2.0, -0.3], dtype=torch.float64)
    coef[2, 5] = 0.7
    ids, values = encode_tokens(skeletons, 24), encode_constants(skeletons, coef, 24)
    for i, s in enumerate(skeletons):
        at = (ids[i] == TOKENS.index("C")).nonzero().flatten()
        assert len(at) == len(s) and torch.isnan(values[i, ids[i] != TOKENS.index("C")]).all()
        assert values[i, at].tolist() == coef[i, list(s)].tolist()  # k-th C is the k-th term
        assert skeleton_tokens(s).count("C") == len(s)


def test_the_constant_head_learns(trained):
    first, last = trained.constant_history[0][1], trained.constant_history[-1][1]
    assert first == pytest.approx(np.log(41), abs=0.5) and last < first


def test_predict_constants_reads_the_head_at_each_C(trained):
    """Against a hand-written pass: the head's expectation at the state before each C."""
    batch = generate(2, generator=5, n_points=32)
    model = trained.model
    skeletons = [(1, 3), (0, 4, 6), (2,)]
    got = predict_constants(model, batch.t[0], batch.y[0], skeletons)
    assert got.shape == (3, 7) and got.dtype == torch.float64
    with torch.no_grad():
        memory = model.encode(batch.t[:1], batch.y[:1])
        for i, s in enumerate(skeletons):
            ids = encode_tokens([s], model.config.max_len)
            h = model.hidden(memory, ids[:, :-1])[0]
            positions = [j for j in range(ids.shape[1] - 1) if int(ids[0, j + 1]) == TOKENS.index("C")]
            for k, j in zip(s, positions):
                p = F.softmax(model.constant(h[j]).double(), -1)
                assert float(got[i, k]) == pytest.approx(float((p * model.bins).sum()), abs=1e-6)
            outside = [k for k in range(7) if k not in s]
            assert bool((got[i, outside] == 0).all())
    assert bool((got.abs() <= model.config.constant_range).all())


def test_two_hot_methods_use_the_network_constants(trained):
    batch = generate(1, generator=11, n_points=32, noise=0.01)
    t, y = batch.t[0], batch.y[0]
    fit = predict("transformer_two_hot", t, y, trained, beam=3)
    net = predict_constants(trained.model, t, y, [fit.skeleton])[0]
    assert np.allclose(fit.constants, net.numpy()) and fit.y0 == float(y[0])
    again = select(t, y, [fit.skeleton], constants=net[None])
    assert again.bic == pytest.approx(fit.bic)
    refined = predict("transformer_two_hot_refined", t, y, trained, beam=3, refine_steps=5)
    c, _, _ = refine(t, y, fit.skeleton, fit.constants, fit.y0, 5)
    assert refined.skeleton == fit.skeleton and np.allclose(refined.constants, c)
    with pytest.raises(ValueError, match="constants"):
        select(t, y, [fit.skeleton], constants=torch.zeros(2, 7))


def test_joined_study_and_constant_claims(trained):
    kw = dict(n_problems=3, noises=(0.0,), irregularities=(0.0,), beam=2, seed=4)
    a = recovery_study(trained, methods=("transformer",), **kw)
    b = recovery_study(trained, methods=TRANSFORMER_METHODS[1:], **kw)
    both = join_methods([a, b])
    assert both.methods == TRANSFORMER_METHODS and both.r2_new.shape == (1, 3, 3)
    assert np.array_equal(both.r2_new[:, :1], a.r2_new)
    # the refined method alone (its own beam and two-hot fit) = the one sharing them
    alone = recovery_study(trained, methods=TRANSFORMER_METHODS[2:], **kw)
    assert np.array_equal(alone.r2_new[:, 0], b.r2_new[:, 1])
    assert alone.predicted[0][0] == b.predicted[0][1]
    with pytest.raises(ValueError, match="methods"):
        join_methods([a, a])
    with pytest.raises(ValueError, match="problems"):
        join_methods([a, recovery_study(trained, methods=TRANSFORMER_METHODS[1:],
                                        **{**kw, "seed": 5})])
    with pytest.raises(ValueError, match="methods"):
        read_constant_claims(a)


def test_constant_claims_follow_the_numbers():
    n = 20
    r2 = np.zeros((2, 3, n))
    r2[:, 0] = np.where(np.arange(n) < 16, 0.95, 0.2)  # least squares 0.8
    r2[:, 1] = np.where(np.arange(n) < 2, 0.95, 0.2)  # two-hot 0.1
    r2[:, 2] = r2[:, 0]  # refined = least squares
    sec = np.ones(r2.shape)
    study = RecoveryStudy(((0.0, 0.0), (0.05, 1.0)), TRANSFORMER_METHODS, np.zeros(r2.shape, bool),
                          r2, r2, sec, ((1,),) * n, (), 8)
    c = read_constant_claims(study)
    assert c["rate_ls_s0_r0"] == pytest.approx(0.8) and c["rate_two_hot_all"] == pytest.approx(0.1)
    assert c["two_hot_vs_ls_s0_r0"] == "lower" and c["two_hot_vs_ls_all_diff"] == pytest.approx(-0.7)
    assert c["refined_vs_ls_all"] == "tie" and c["refined_vs_two_hot_s0.05_r1"] == "higher"
    assert c["rate_ls_all_low"] < 0.8 < c["rate_ls_all_high"]


def test_only_keeps_the_chosen_methods(trained):
    full = recovery_study(trained, n_problems=2, noises=(0.0,), irregularities=(0.0,), beam=2,
                          seed=6, methods=("sindy",) + TRANSFORMER_METHODS)
    part = full.only(("transformer", "sindy"))
    assert part.methods == ("transformer", "sindy")
    assert np.array_equal(part.r2_new[:, 1], full.r2_new[:, 0])
    assert part.predicted[0][0] == full.predicted[0][1]
    with pytest.raises(ValueError, match="methods"):
        full.only(("enumeration",))


def test_constant_accuracy_against_the_generator_truth(trained):
    from otkit.odes.fitting import fit_constants
    from otkit.odes.study import constant_accuracy
    acc = constant_accuracy(trained, n_problems=12, seed=1)
    # least squares on clean, regular data recovers the true constants of the true skeleton
    assert np.median(acc.error_ls) < 0.02 and np.median(acc.r2_ls) > 0.99
    # the two-hot errors are the network's, recomputed here for one problem
    batch = generate(12, n_points=32, t_max=4.0, generator=1)
    sk, truth = batch.skeletons[3], batch.coefficients[3]
    net = predict_constants(trained.model, batch.t[3], batch.y[3], [sk])[0]
    assert acc.error_two_hot[3] == pytest.approx(float((net - truth)[list(sk)].abs().max()))
    ls = fit_constants(batch.t[3], batch.y[3], [sk])[0][0]
    assert acc.error_ls[3] == pytest.approx(float((ls - truth)[list(sk)].abs().max()))
    assert bool((acc.error_two_hot <= 4.0).all())
    summary = acc.summary()
    assert summary["rate_ls"] == pytest.approx(float(np.mean(acc.r2_ls >= 0.9)))
    assert summary["error_verdict"] in ("higher", "lower", "tie")
