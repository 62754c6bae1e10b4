"""AIM's trunk: patches in raster order, the prefix-causal mask and what it lets each
prediction see (checked by perturbing inputs, not by reading the mask back)."""

import pytest
import torch

from otkit.aim.model import (
    AIMConfig,
    PrefixCausalViT,
    patchify,
    prefix_causal_mask,
    sample_prefix,
    sincos_positions,
    unpatchify,
)


def test_patchify_is_raster_order_and_unpatchify_inverts_it():
    img = torch.arange(16.0).view(1, 1, 4, 4)
    p = patchify(img, 2)
    # hand-cut: top-left, top-right, bottom-left, bottom-right 2×2 blocks
    assert p[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    x = torch.randn(3, 2, 8, 8)
    assert torch.equal(unpatchify(patchify(x, 4), 4, 2), x)


def test_mask_matches_its_definition_by_brute_force():
    n = 6
    for k in range(n + 1):
        m = prefix_causal_mask(n, k)[0]
        for i in range(n):
            for j in range(n):
                assert bool(m[i, j]) == (j <= i or j < k), (k, i, j)
    batch = prefix_causal_mask(n, torch.tensor([0, 3]))
    assert batch.shape == (2, n, n)
    assert torch.equal(batch[0], torch.ones(n, n, dtype=torch.bool).tril())


def test_prefix_lengths_are_uniform_on_1_to_n_minus_1():
    k = sample_prefix(20000, 5, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(k, minlength=5)
    assert counts[0] == 0 and counts[1:].min() > 4700 and counts[1:].max() < 5300


def _model(seed=0):
    torch.manual_seed(seed)
    return PrefixCausalViT(AIMConfig(image_size=8, patch_size=2, width=16, heads=2)).eval()


@torch.no_grad()
def test_a_later_patch_never_changes_an_earlier_non_prefix_prediction():
    model = _model()
    x = torch.randn(1, 16, 4)
    k = 5
    base = model(x, torch.tensor([k]))
    for m in (k, 9, 15):      # a non-prefix patch
        y = x.clone()
        y[0, m] += 3.0
        out = model(y, torch.tensor([k]))
        assert torch.allclose(out[0, :m], base[0, :m], atol=1e-6), m
        assert not torch.allclose(out[0, m:], base[0, m:], atol=1e-4), m


@torch.no_grad()
def test_a_prefix_patch_reaches_every_position_but_causal_does_not():
    model = _model()
    x = torch.randn(1, 16, 4)
    y = x.clone()
    y[0, 3] += 3.0            # inside a prefix of length 5
    prefix = model(y, torch.tensor([5])) - model(x, torch.tensor([5]))
    assert prefix[0, :3].abs().amax() > 1e-4          # earlier prefix positions see it
    causal = model(y, torch.tensor([0])) - model(x, torch.tensor([0]))
    assert causal[0, :3].abs().amax() < 1e-6           # causal: they do not
    bidirectional = model(y, None) - model(x, None)
    assert bidirectional[0, :3].abs().amax() > 1e-4


def test_sincos_positions_closed_form():
    pe = sincos_positions(3, 8)
    assert pe.shape == (9, 8)
    # patch (row 1, col 2) = index 5; rows use channels 0..3, columns 4..7, ω = [1, 10000^-1/2]
    w = torch.tensor([1.0, 0.01])
    row, col = torch.tensor(1.0) * w, torch.tensor(2.0) * w
    expect = torch.cat([row.sin(), row.cos(), col.sin(), col.cos()])
    assert torch.allclose(pe[5], expect, atol=1e-6)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"patch_size": 3}, "patch_size"), ({"width": 30}, "width"), ({"depth": 0}, "depth"),
    ({"patch_size": 8}, "patch_size"),
])
def test_bad_configs_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AIMConfig(**kwargs)


def test_bad_inputs_raise():
    model = _model()
    with pytest.raises(ValueError, match="patches"):
        model(torch.randn(2, 15, 4), None)
    with pytest.raises(ValueError, match="finite"):
        model(torch.full((1, 16, 4), float("nan")), None)
    with pytest.raises(ValueError, match="prefix"):
        model(torch.randn(2, 16, 4), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="prefix"):
        prefix_causal_mask(4, 5)
    with pytest.raises(TypeError, match="prefix"):
        prefix_causal_mask(4, torch.tensor([1.0]))
    with pytest.raises(ValueError, match="images"):
        patchify(torch.randn(8, 8), 2)
    with pytest.raises(ValueError, match="patch_size"):
        patchify(torch.randn(1, 1, 8, 8), 3)
    with pytest.raises(TypeError, match="config"):
        PrefixCausalViT({"width": 8})
