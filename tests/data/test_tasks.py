"""Tests of otkit.data.tasks.

Reference: every answer recomputed by brute force from the printed prompt (the token names),
independently of the generator.
"""

from __future__ import annotations

import pytest
import torch

from otkit.data.tasks import IGNORE, TASKS, TaskSpec, Vocabulary, make_tasks


def brute_force_answer(tokens: list[str], facts: torch.Tensor) -> list[str]:
    """The answer of one printed prompt such as ``<addition> n3 n9 =``."""
    head, *body = tokens
    assert body[-1] == "="
    body = body[:-1]
    spec = TaskSpec()
    num = [int(t[1:]) for t in body]
    if head == "<addition>":
        return [f"n{(num[0] + num[1]) % spec.modulus}"]
    if head == "<comparison>":
        assert num[0] != num[1]
        return ["<lt>" if num[0] < num[1] else "<gt>"]
    if head == "<counting>":
        return [f"n{sum(v == num[0] for v in num[1:])}"]
    if head == "<reversal>":
        return [f"n{v}" for v in reversed(num)]
    assert head == "<facts>"
    return [f"n{int(facts[num[0], num[1]])}"]


def test_every_answer_matches_a_brute_force_recomputation():
    data = make_tasks(200, seed=3)
    vocab = Vocabulary(data.spec)
    facts = data.spec.fact_table()
    p = data.prompt_len
    for row, task in zip(data.ids, data.task):
        prompt = vocab.decode(row[:p]).split()
        answer = vocab.decode(row[p:]).split()
        assert prompt[0] == f"<{TASKS[int(task)]}>"
        assert answer == brute_force_answer(prompt, facts)


def test_layout_counts_and_targets():
    data = make_tasks(50, seed=0)
    assert len(data) == 250
    assert torch.bincount(data.task).tolist() == [50] * 5
    assert (data.ids[:, data.last_prompt] == Vocabulary.SEP).all()
    targets = data.targets
    scored = targets != IGNORE
    assert scored.sum(1).tolist() == data.answer_len.tolist()
    assert scored[:, : data.last_prompt].sum() == 0  # nothing before '=' is scored
    # the first scored target is the token after '=', i.e. the first answer token
    torch.testing.assert_close(targets[:, data.last_prompt], data.answers[:, 0])
    assert (data.answer_len[data.task == TASKS.index("reversal")] == 4).all()
    assert data.ids.max() < data.vocab.size


def test_deterministic_from_the_seed():
    a, b, c = make_tasks(20, seed=7), make_tasks(20, seed=7), make_tasks(20, seed=8)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.task, b.task)
    assert not torch.equal(a.ids, c.ids)


def test_facts_are_the_same_across_draws():
    """The fact table comes from spec.fact_seed, not the data seed: a prompt has one answer."""
    seen: dict[tuple, tuple] = {}
    for seed in range(3):
        d = make_tasks(100, tasks=["facts"], seed=seed)
        for row in d.ids:
            key, ans = tuple(row[:d.prompt_len].tolist()), tuple(row[d.prompt_len:].tolist())
            assert seen.setdefault(key, ans) == ans


def test_select_and_task_subsets():
    data = make_tasks(10, tasks=["counting", "facts"], seed=0)
    assert set(data.task.tolist()) == {TASKS.index("counting"), TASKS.index("facts")}
    sub = data.select(data.task == TASKS.index("facts"))
    assert len(sub) == 10 and (sub.answer_len == 1).all()


def test_bad_inputs_raise_naming_the_argument():
    with pytest.raises(ValueError, match="tasks"):
        make_tasks(5, tasks=["addition", "sorting"])
    with pytest.raises(ValueError, match="tasks"):
        make_tasks(5, tasks=["addition", "addition"])
    with pytest.raises(ValueError, match="n_per_task"):
        make_tasks(0)
    with pytest.raises(ValueError, match="modulus"):
        TaskSpec(modulus=1)


def test_a_mixture_gives_each_task_its_own_count():
    data = make_tasks({"addition": 7, "reversal": 3}, seed=0)
    assert torch.bincount(data.task, minlength=5).tolist() == [7, 0, 0, 3, 0]
    with pytest.raises(ValueError, match="n_per_task"):
        make_tasks({"addition": 7}, tasks=["addition", "facts"])
    with pytest.raises(ValueError, match="tasks"):
        make_tasks({"sorting": 7})
