"""Notebook 17's experiments at toy sizes: checkpoints, probes, reconstructions, the readings."""

import numpy as np
import pytest
import torch
from scipy import stats

from otkit.aim.model import patchify
from otkit.aim.study import (
    Checkpoint,
    PretrainRun,
    Split,
    digits_patches,
    final,
    loss_accuracy_spearman,
    paired_verdict,
    pretrain_aim,
    pretrain_aimv2,
    reconstruct,
    shapes_patches,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_digits():
    train, test = digits_patches(2)
    return Split(train.patches[:300], train.labels[:300]), Split(test.patches[:100],
                                                                  test.labels[:100])


def test_digits_patches_are_the_images():
    train, test = digits_patches(2)
    assert train.patches.shape[1:] == (16, 4) and len(train.labels) + len(test.labels) == 1797
    from otkit.data import digits
    x = digits(split="train", seed=0)
    assert torch.equal(train.patches, patchify(x.view(-1, 1, 8, 8), 2))


def test_pretraining_lowers_the_heldout_loss_and_records_checkpoints(small_digits):
    train, test = small_digits
    run = pretrain_aim(train, test, width=16, steps=40, checkpoints=[0, 40], batch_size=32,
                       probes=("linear",))
    assert [c.step for c in run.checkpoints] == [0, 40] and len(run.train_losses) == 40
    assert run.checkpoints[1].loss < run.checkpoints[0].loss
    assert 0.1 < run.checkpoints[1].linear <= 1 and np.isnan(run.checkpoints[1].attentive)
    model = run.model()
    x = test.patches[:4]
    rec = reconstruct(model, x, 6)
    # the prefix is given back as it is; later patches are predictions
    assert torch.equal(patchify(rec, 2)[:, :6], x[:, :6])
    assert not torch.allclose(patchify(rec, 2)[:, 6:], x[:, 6:])
    with pytest.raises(ValueError, match="step"):
        run.model(step=7)


def test_aimv2_variants_run_and_probe_the_encoder():
    train, test = shapes_patches(120, 60)
    for variant in ("joint", "caption"):
        run = pretrain_aimv2(train, test, variant=variant, width=16, steps=10, batch_size=16,
                             probes=("linear",))
        assert run.kind == "aimv2" and run.checkpoints[-1].step == 10
        assert run.model().config.width == 16


def _runs(points):
    return [PretrainRun("aim", "prefix", 8, s, None,
                        tuple(Checkpoint(i + 1, loss, acc, acc) for i, (loss, acc) in enumerate(p)),
                        (), 0.0) for s, p in enumerate(points)]


def test_spearman_against_scipy_and_verdicts():
    pts = [[(0.5, 0.6), (0.4, 0.7), (0.3, 0.65)], [(0.45, 0.5), (0.35, 0.8), (0.2, 0.9)]]
    flat = np.array([q for p in pts for q in p])
    expect = stats.spearmanr(flat[:, 0], flat[:, 1]).statistic
    assert loss_accuracy_spearman(_runs(pts))["rho"] == pytest.approx(expect)
    a = _runs([[(0.1, 0.9)], [(0.1, 0.91)], [(0.1, 0.92)]])
    b = _runs([[(0.1, 0.5)], [(0.1, 0.52)], [(0.1, 0.49)]])
    assert paired_verdict(a, b)["verdict"] == "higher"
    assert paired_verdict(b, a)["verdict"] == "lower"
    assert final(a, "linear") == [0.9, 0.91, 0.92]
    two = _runs([[(0.5, 0.2), (0.1, 0.9)], [(0.5, 0.25), (0.1, 0.91)], [(0.5, 0.22), (0.1, 0.95)]])
    assert final(two, "attentive", step=1) == [0.2, 0.25, 0.22]
    init = paired_verdict(two, two, "attentive", step_b=1)
    assert init["verdict"] == "higher" and init["b"] == pytest.approx(np.mean([0.2, 0.25, 0.22]))
    with pytest.raises(ValueError, match="step"):
        final(two, "loss", step=5)
    with pytest.raises(ValueError, match="seeds"):
        paired_verdict(a, b[:2])
    with pytest.raises(ValueError, match="probe"):
        loss_accuracy_spearman(a, "knn")


def test_bad_arguments_raise(small_digits):
    train, test = small_digits
    with pytest.raises(ValueError, match="attention"):
        pretrain_aim(train, test, attention="bidirectional")
    with pytest.raises(TypeError, match="train"):
        pretrain_aim(train.patches, test)
    with pytest.raises(ValueError, match="steps"):
        pretrain_aim(train, test, steps=0)
    with pytest.raises(ValueError, match="checkpoints"):
        pretrain_aim(train, test, steps=5, checkpoints=[10])
    with pytest.raises(ValueError, match="variant"):
        pretrain_aimv2(train, test, variant="text")
    with pytest.raises(ValueError, match="captions"):
        pretrain_aimv2(train, test)
