"""The digits section of the Simple ReFlow study (otkit.reflow.digits), on a tiny budget."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sklearn")

from otkit.flows.digits import train_digits_classifier  # noqa: E402
from otkit.flows.study import seed_values  # noqa: E402
from otkit.reflow.digits import digits_reflow_study, read_digits_study  # noqa: E402
from otkit.stats import compare  # noqa: E402


@pytest.fixture(scope="module")
def study():
    scorer = train_digits_classifier(epochs=1, seed=0)
    rows, results = digits_reflow_study(
        seeds=(0, 1), nfes=(1, 3), students=("simple", "baseline"), teacher_steps=8,
        student_steps=4, batch_size=32, channels=4, depth=1, num_pairs=64, pair_nfe=2,
        guidance=1.0, num_samples=80, scorer=scorer, return_results=True)
    return rows, results


def test_rows_and_results(study):
    rows, results = study
    methods = {r["method"] for r in rows}
    assert methods == {"teacher", "teacher w=0", "simple", "baseline"}
    assert {r["nfe"] for r in rows if r["method"] == "teacher w=0"} == {3}
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["frechet"] >= 0.0
    assert all(r["sgd_steps"] == 12 for r in rows if r["method"] == "simple")
    assert all(r["teacher_evaluations"] == 64 * 2 * 2 for r in rows if r["method"] == "simple")
    # the student starts from the teacher and moves
    t, s = results[("teacher", 0)].ema_model, results[("simple", 0)].ema_model
    assert not torch.equal(t.out.weight, s.out.weight)


def test_reading_matches_the_paired_comparisons(study):
    rows, _ = study
    reading = read_digits_study(rows)
    for n in (1, 3):
        expected = compare(seed_values(rows, "frechet", method="simple", nfe=n),
                           seed_values(rows, "frechet", method="teacher", nfe=n))
        assert reading.frechet[("simple", n)].verdict == expected.verdict
    assert reading.guidance is not None
    assert any(line.startswith("Claim 'ReFlow beats") for line in reading.lines)
    assert read_digits_study(rows, student="baseline").nfes == (1, 3)


def test_bad_inputs(study):
    rows, _ = study
    with pytest.raises(ValueError, match="students"):
        digits_reflow_study(students=("lpips",))
    with pytest.raises(ValueError, match="seeds"):
        digits_reflow_study(seeds=())
    with pytest.raises(ValueError, match="label_dropout"):
        digits_reflow_study(label_dropout=1.5)
    with pytest.raises(ValueError, match="no 'nope' runs"):
        read_digits_study(rows, student="nope")
