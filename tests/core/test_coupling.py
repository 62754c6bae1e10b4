"""otkit.coupling.sample_rows: one categorical draw per row, checked by scipy's chi-square test."""

import math

import pytest
import scipy.stats
import torch

from otkit.coupling import sample_rows


def test_draws_follow_each_rows_softmax():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0], [5.0, 5.0, 5.0, 5.0], [-300.0, -301.0, 0.0, 1.0]],
                          dtype=torch.float64)
    draws = 20_000
    counts = torch.zeros(3, 4)
    j = sample_rows(logits.repeat(draws, 1), gen).view(draws, 3)
    for r in range(3):
        counts[r] = torch.bincount(j[:, r], minlength=4).float()
    for r in range(3):
        expected = torch.softmax(logits[r], 0).numpy() * draws
        keep = expected > 5  # chi-square needs non-tiny cells; tiny ones must stay empty
        _, p = scipy.stats.chisquare(counts[r].numpy()[keep], expected[keep] *
                                     counts[r].numpy()[keep].sum() / expected[keep].sum())
        assert p > 1e-4, (r, p)
        assert counts[r][~torch.from_numpy(keep)].sum() <= 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_impossible_columns_are_never_drawn(dtype):
    gen = torch.Generator().manual_seed(1)
    logits = torch.full((5000, 6), -math.inf, dtype=dtype)
    logits[:, 1] = 0.0
    logits[:, 3] = -0.5
    j = sample_rows(logits, gen)
    assert set(j.unique().tolist()) == {1, 3}


def test_a_uniform_that_rounds_to_the_total_still_lands_on_a_possible_column(monkeypatch):
    """u · F_m may round up to F_m: the draw must not run past the last possible column."""
    logits = torch.tensor([[0.0, 0.0, -math.inf, -math.inf]])
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.ones(1, 1))  # u = 1: the edge
    assert sample_rows(logits).tolist() == [1]
