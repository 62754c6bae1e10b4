"""AIMv2's decoder: causal across modalities, its loss made of AIM's and the captions'."""

import pytest
import torch
import torch.nn.functional as F

from otkit.aim.model import AIMConfig
from otkit.aim.multimodal import AIMv2, AIMv2Config
from otkit.aim.objective import aim_loss
from otkit.aim.shapes import VOCAB, caption_text, shapes_with_captions


def _model(**kw):
    torch.manual_seed(0)
    enc = AIMConfig(image_size=8, patch_size=2, width=16, heads=2)
    return AIMv2(AIMv2Config(enc, vocab_size=len(VOCAB), caption_len=5, **kw)).eval()


@torch.no_grad()
def test_text_sees_the_image_and_the_image_never_sees_the_text():
    model = _model()
    x = torch.randn(2, 16, 4)
    c = torch.tensor([[0, 1, 3, 7, 9], [0, 2, 4, 8, 10]])
    pix, logits = model(x, c, torch.tensor([3, 3]))
    assert pix.shape == (2, 16, 4) and logits.shape == (2, 5, len(VOCAB))
    c2 = c.clone()
    c2[:, 3] = 5
    pix2, logits2 = model(x, c2, torch.tensor([3, 3]))
    assert torch.equal(pix, pix2)                            # image rows ignore the text
    assert torch.allclose(logits[:, :3], logits2[:, :3])     # text is causal
    x2 = x.clone()
    x2[:, 15] += 2                                           # the last patch
    _, logits3 = model(x2, c, torch.tensor([3, 3]))
    assert not torch.allclose(logits3[:, 0], logits[:, 0])   # <bos> reads the whole image


def test_loss_is_the_weighted_sum_of_its_parts():
    model = _model()
    x, k = torch.randn(3, 16, 4), torch.tensor([1, 4, 9])
    c = shapes_with_captions(3).captions
    out = model.loss(x, c, k)
    with torch.no_grad():
        pix, logits = model(x, c, k)
        lp = aim_loss(pix, x, k)
        lt = F.cross_entropy(logits[:, :-1].reshape(-1, len(VOCAB)), c[:, 1:].reshape(-1))
    assert out.pixel == pytest.approx(float(lp), rel=1e-5)
    assert out.text == pytest.approx(float(lt), rel=1e-5)
    assert float(out.total.detach()) == pytest.approx(0.4 * float(lp) + float(lt), rel=1e-5)
    pixel_only = _model(text_weight=0.0).loss(x, None, k)
    assert torch.isnan(torch.tensor(pixel_only.text))


def test_shapes_captions_name_what_is_drawn():
    d = shapes_with_captions(40, noise=0.0, seed=3)
    assert d.images.shape == (40, 1, 16, 16) and d.captions.shape == (40, 5)
    for i in range(40):
        words = caption_text(d.captions[i]).split()
        img = d.images[i, 0] > -0.9
        rows, cols = img.nonzero(as_tuple=True)
        assert (rows.float().mean() < 8) == (words[2] == "top")
        assert (cols.float().mean() < 8) == (words[3] == "left")
        assert VOCAB.index(words[1]) - 3 == int(d.shape[i])
    big = d.images[d.size == 1].gt(-0.9).sum((1, 2, 3)).float().mean()
    small = d.images[d.size == 0].gt(-0.9).sum((1, 2, 3)).float().mean()
    assert big > 1.5 * small


def test_bad_inputs_raise():
    enc = AIMConfig(image_size=8, patch_size=2, width=16, heads=2)
    with pytest.raises(ValueError, match="pixel_weight"):
        AIMv2Config(enc, 11, 5, pixel_weight=0.0, text_weight=0.0)
    with pytest.raises(ValueError, match="caption_len"):
        AIMv2Config(enc, 11, 1)
    model = _model()
    with pytest.raises(ValueError, match="captions"):
        model(torch.randn(2, 16, 4), torch.zeros(2, 4, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="captions"):
        model(torch.randn(2, 16, 4), torch.full((2, 5), 99), 1)
    with pytest.raises(ValueError, match="captions"):
        model.loss(torch.randn(2, 16, 4), None, 1)
    with pytest.raises(ValueError, match="size"):
        shapes_with_captions(4, size=4)
