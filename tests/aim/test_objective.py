"""The normalized-pixel loss against hand computations."""

import math

import pytest
import torch

from otkit.aim.objective import aim_loss, normalize_patches, target_mask


def test_normalized_patch_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    # mean 3, unbiased variance (4 + 1 + 0 + 9) / 3 = 14/3
    sd = math.sqrt(14 / 3 + 1e-6)
    expect = [(1 - 3) / sd, (2 - 3) / sd, 0.0, (6 - 3) / sd]
    assert normalize_patches(x)[0].tolist() == pytest.approx(expect, rel=1e-6)
    flat = normalize_patches(torch.full((2, 4), 5.0))
    assert torch.equal(flat, torch.zeros(2, 4))


def test_loss_by_hand_and_prefix_targets_ignored():
    patches = torch.tensor([[[0.0, 2.0], [1.0, 3.0], [4.0, 0.0], [1.0, 1.0]]])  # N = 4, P = 2
    pred = torch.tensor([[[0.0, 0.0], [1.0, -1.0], [2.0, 2.0], [9.0, 9.0]]])
    # raw targets: patches 1, 2, 3 from rows 0, 1, 2; per-patch mean squared errors
    errs = [((0 - 1) ** 2 + (0 - 3) ** 2) / 2, ((1 - 4) ** 2 + (-1 - 0) ** 2) / 2,
            ((2 - 1) ** 2 + (2 - 1) ** 2) / 2]
    assert float(aim_loss(pred, patches, 0, normalize=False)) == pytest.approx(sum(errs) / 3)
    assert float(aim_loss(pred, patches, 1, normalize=False)) == pytest.approx(sum(errs) / 3)
    assert float(aim_loss(pred, patches, 2, normalize=False)) == pytest.approx(sum(errs[1:]) / 2)
    assert float(aim_loss(pred, patches, 3, normalize=False)) == pytest.approx(errs[2])
    # normalized 2-pixel patch (a, b): ±(|a − b|/2) / √((a − b)²/2 + ε) ≈ ±1/√2
    s = 1 / math.sqrt(2)
    norm_t = [[-s, s], [s, -s], [0.0, 0.0]]
    expect = sum(((p - t) ** 2 for row_p, row_t in zip(pred[0, :3].tolist(), norm_t)
                  for p, t in zip(row_p, row_t))) / 6
    assert float(aim_loss(pred, patches, 0)) == pytest.approx(expect, rel=1e-5)


def test_changing_a_prefix_target_prediction_does_not_change_the_loss():
    torch.manual_seed(0)
    patches, pred = torch.randn(3, 6, 4), torch.randn(3, 6, 4)
    k = torch.tensor([1, 3, 5])
    base = aim_loss(pred, patches, k)
    other = pred.clone()
    other[1, :2] += 10      # rows 0, 1 predict patches 1, 2: inside image 1's prefix of 3
    other[2, :4] -= 7       # inside image 2's prefix of 5
    other[:, -1] += 100     # the last row predicts nothing
    assert torch.allclose(aim_loss(other, patches, k), base)
    other[0, 0] += 1        # image 0's first target (patch 1 ≥ K = 1) counts
    assert not torch.allclose(aim_loss(other, patches, k), base)


def test_target_mask():
    m = target_mask(torch.tensor([0, 2, 4]), 5)
    assert m.tolist() == [[True] * 4, [False, True, True, True], [False, False, False, True]]


def test_bad_inputs_raise():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="predictions"):
        aim_loss(torch.randn(2, 4, 2), x, 1)
    with pytest.raises(ValueError, match="prefix"):
        aim_loss(x, x, 4)
    with pytest.raises(ValueError, match="prefix"):
        aim_loss(x, x, torch.tensor([1, 1, 1]))
    with pytest.raises(TypeError, match="prefix"):
        aim_loss(x, x, 1.5)
    with pytest.raises(ValueError, match="patches"):
        normalize_patches(torch.randn(3, 1))
