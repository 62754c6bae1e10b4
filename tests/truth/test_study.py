"""Tests of otkit.truth.study.

References: an explicit greedy-decoding loop, the transformer's own residual stream, the
closed form E|cos| = Γ(d/2) / (√π Γ((d + 1)/2)) for random directions, and synthetic
activations where the truth directions are known (orthogonal per task, or shared).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otkit.data.tasks import TASKS, TaskSpec, make_tasks
from otkit.nn.trainer import TrainerConfig
from otkit.nn.transformer import residual_stream
from otkit.truth.study import (
    answer_confidence,
    answer_correct,
    fit_probe,
    last_prompt_activations,
    probe_study,
    random_cosine,
    read_claims,
    summarize,
    train_multitask,
)

SPEC = TaskSpec(modulus=5, compare_max=8, count_length=3, count_symbols=2, reverse_length=3,
                reverse_symbols=4, n_entities=6, n_relations=2)


@pytest.fixture(scope="module")
def trained():
    config = TrainerConfig(steps=60, batch_size=32, lr=3e-3, warmup=5, eval_every=20)
    return train_multitask(spec=SPEC, n_train=200, n_eval=40, trainer_config=config, seed=0)


def greedy(model, data) -> torch.Tensor:
    """Decode the answer token by token from the prompt; compare to the reference."""
    p = data.prompt_len
    ids = data.ids[:, :p].clone()
    out = []
    for _ in range(data.spec.answer_len):
        nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
        ids = torch.cat([ids, nxt], 1)
    pred = torch.cat(out, 1)
    ok = torch.ones(len(data), dtype=torch.bool)
    for i in range(len(data)):
        k = int(data.answer_len[i])
        ok[i] = torch.equal(pred[i, :k], data.answers[i, :k])
    return ok


def test_answer_correct_equals_explicit_greedy_decoding(trained):
    with torch.no_grad():
        expected = greedy(trained.model, trained.data)
    got = answer_correct(trained.model, trained.data)
    assert torch.equal(got, expected)
    assert 0 < int(got.sum()) < len(got)  # both outcomes occur, so the check can fail


def test_confidence_is_a_probability_product(trained):
    conf = answer_confidence(trained.model, trained.data)
    assert conf.shape == (len(trained.data),)
    assert float(conf.min()) > 0 and float(conf.max()) <= 1


def test_selected_checkpoint_is_the_closest_to_the_band(trained):
    def dist(acc):
        return sum(max(0, 0.55 - a) + max(0, a - 0.85) for a in acc.values())

    best = min(dist(a) for _, a in trained.history)
    assert dist(dict(trained.history)[trained.step]) == pytest.approx(best)
    assert [s for s, _ in trained.history] == [20, 40, 60]
    assert set(trained.accuracy) == set(TASKS)


def test_last_prompt_activations_are_the_residual_stream_at_the_equals_sign(trained):
    acts = last_prompt_activations(trained.model, trained.data, batch_size=7)
    stream, _ = residual_stream(trained.model, trained.data.inputs)
    torch.testing.assert_close(acts, stream[:, :, trained.data.last_prompt])
    assert acts.shape == (3, len(trained.data), 64)


def test_random_cosine_matches_the_closed_form():
    for d in (3, 16, 64):
        exact = math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)
        assert random_cosine(d, samples=40000) == pytest.approx(exact, rel=0.02)


def test_probe_direction_is_the_decision_function_in_raw_coordinates():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([1, 10, 0.1, 3, 1]) + 4
    y = (x[:, 0] + 0.3 * x[:, 1] > 7) .astype(int)
    probe = fit_probe(x, y)
    s = probe.score(x)
    np.testing.assert_allclose(s - x @ probe.direction, (s - x @ probe.direction)[0], atol=1e-8)


def synthetic(shared: bool, n: int = 400, d: int = 16, seed: int = 0):
    """Two tasks; correctness is the sign of h along e_task (orthogonal) or e_0 (shared)."""
    rng = np.random.default_rng(seed)
    task = np.repeat([0, 1], n)
    h = rng.normal(size=(2 * n, d))
    h[:, 2] += 4 * task  # the tasks sit apart along e_2
    axis = np.where(task == 0, 0, 0 if shared else 1)
    correct = h[np.arange(2 * n), axis] + 0.3 * rng.normal(size=2 * n) > 0
    acts = torch.tensor(h).unsqueeze(0)
    return acts, torch.tensor(correct), torch.tensor(task)


def test_orthogonal_truth_directions_transfer_at_chance_and_shared_ones_transfer():
    ortho = probe_study(*synthetic(shared=False))
    shared = probe_study(*synthetic(shared=True))
    assert ortho.in_task(0).min() > 0.9 and shared.in_task(0).min() > 0.9
    assert abs(ortho.cross_task(0).mean() - 0.5) < 0.08
    assert shared.cross_task(0).min() > 0.9
    assert ortho.off_cosine(0).max() < 0.2 and shared.off_cosine(0).min() > 0.8
    assert ortho.task_decoding[0] > 0.95 and ortho.silhouette[0] > 0
    claims_o = read_claims([probe_study(*synthetic(False, n=800, seed=s), seed=s) for s in range(6)])
    claims_s = read_claims([probe_study(*synthetic(True, seed=s), seed=s) for s in range(3)])
    assert claims_o["transfer"] == "near chance" and claims_s["transfer"] == "above chance"
    assert claims_o["orthogonal"] == "near-orthogonal" and claims_s["orthogonal"] == "aligned"
    assert claims_o["clusters"] == "clustered"


def test_constant_layers_are_skipped_and_summaries_are_finite(trained):
    acts = last_prompt_activations(trained.model, trained.data)
    correct = answer_correct(trained.model, trained.data)
    study = probe_study(acts, correct, trained.data.task)
    assert study.probed == [1, 2]  # '=' at one position: the embedding layer is constant
    row = summarize(study)
    assert row["layer"] in (1, 2)


def test_bad_inputs_raise_naming_the_argument():
    acts, correct, task = synthetic(False)
    with pytest.raises(ValueError, match="acts"):
        probe_study(acts[0], correct, task)
    with pytest.raises(ValueError, match="C"):
        probe_study(acts, correct, task, C=0.0)
    with pytest.raises(ValueError, match="layers"):
        probe_study(acts, correct, task, layers=[3])
    with pytest.raises(ValueError, match="band"):
        train_multitask(spec=SPEC, band=(0.9, 0.5))
    with pytest.raises(ValueError, match="one class"):
        fit_probe(np.zeros((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match="tasks"):
        make_tasks(3, tasks=["addition", "poetry"])
