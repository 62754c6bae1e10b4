"""Generated multi-task token data for a small language model: prompt → answer sequences.

Five tasks share one vocabulary (:class:`TaskSpec` sets their sizes; numbers are single
tokens ``n0, n1, …``):

* ``"addition"``:   ``<add> a b =`` → ``(a + b) mod m``           (a, b ∈ [0, m))
* ``"comparison"``: ``<cmp> a b =`` → ``<lt>`` if a < b else ``<gt>``   (a ≠ b ∈ [0, c))
* ``"counting"``:   ``<cnt> q x₁ … x_k =`` → #{i : x_i = q}       (q, x_i ∈ [0, s))
* ``"reversal"``:   ``<rev> x₁ … x_r =`` → ``x_r … x₁``            (x_i ∈ [0, s'))
* ``"facts"``:      ``<fact> e ρ =`` → value(e, ρ)                  (a random table of
  entities × relations → numbers in [0, m), fixed by ``TaskSpec.fact_seed``, not by the
  data seed, so that every draw asks about the same facts)

Each example is one row of ``ids: [N, P + A]``: the prompt left-padded with ``<pad>`` to
P tokens, then the answer right-padded to A tokens, so the last prompt token (``=``) sits at
position P − 1 for every task. For next-token training, ``inputs = ids[:, :-1]`` and
``targets[:, t] = ids[:, t + 1]`` at the answer tokens, :data:`otkit.nn.trainer.IGNORE`
(−100) elsewhere. Drawing is deterministic from ``seed`` (a CPU ``torch.Generator``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..validation import check_count

__all__ = ["TASKS", "TaskSpec", "Vocabulary", "TaskData", "make_tasks", "IGNORE"]

#: The tasks, in the order of their task ids.
TASKS = ("addition", "comparison", "counting", "reversal", "facts")
IGNORE = -100  # otkit.nn.trainer.IGNORE (data may not import nn)


@dataclass(frozen=True)
class TaskSpec:
    """Sizes of the tasks.

    Attributes:
        modulus: m, addition's modulus and the range of fact values.
        compare_max: c, comparison draws two distinct numbers in [0, c).
        count_length, count_symbols: k symbols from [0, s) after the query q.
        reverse_length, reverse_symbols: r symbols from [0, s') to reverse.
        n_entities, n_relations: the fact table's size.
        fact_seed: seeds the fact table.
    """

    modulus: int = 11
    compare_max: int = 24
    count_length: int = 6
    count_symbols: int = 3
    reverse_length: int = 4
    reverse_symbols: int = 6
    n_entities: int = 24
    n_relations: int = 2
    fact_seed: int = 1234

    def __post_init__(self) -> None:
        for name in ("modulus", "compare_max", "count_length", "count_symbols",
                     "reverse_length", "reverse_symbols", "n_entities", "n_relations"):
            check_count(name, getattr(self, name), minimum=2)
        check_count("fact_seed", self.fact_seed, minimum=0)

    @property
    def prompt_len(self) -> int:
        """P: the longest prompt (task token, operands, ``=``)."""
        return max(4, self.count_length + 3, self.reverse_length + 2)

    @property
    def answer_len(self) -> int:
        """A: the longest answer."""
        return max(1, self.reverse_length)

    @property
    def n_numbers(self) -> int:
        return max(self.modulus, self.compare_max, self.count_length + 1, self.count_symbols,
                   self.reverse_symbols)

    def fact_table(self) -> torch.Tensor:
        """``[n_entities, n_relations]`` values in [0, modulus), drawn from ``fact_seed``."""
        gen = torch.Generator().manual_seed(self.fact_seed)
        return torch.randint(self.modulus, (self.n_entities, self.n_relations), generator=gen)


@dataclass(frozen=True)
class Vocabulary:
    """Token ids: ``<pad>`` 0, ``=`` 1, one token per task, ``<lt>``, ``<gt>``, numbers,
    entities, relations."""

    spec: TaskSpec

    PAD = 0
    SEP = 1

    def task_token(self, task: str) -> int:
        return 2 + _task_index(task)

    @property
    def LT(self) -> int:  # noqa: N802
        return 2 + len(TASKS)

    @property
    def GT(self) -> int:  # noqa: N802
        return 3 + len(TASKS)

    def number(self, value: int | torch.Tensor) -> int | torch.Tensor:
        return 4 + len(TASKS) + value

    def entity(self, index: int | torch.Tensor) -> int | torch.Tensor:
        return 4 + len(TASKS) + self.spec.n_numbers + index

    def relation(self, index: int | torch.Tensor) -> int | torch.Tensor:
        return 4 + len(TASKS) + self.spec.n_numbers + self.spec.n_entities + index

    @property
    def size(self) -> int:
        return 4 + len(TASKS) + self.spec.n_numbers + self.spec.n_entities + self.spec.n_relations

    def names(self) -> list[str]:
        """The name of every token id, for printing."""
        s = self.spec
        return (["<pad>", "="] + [f"<{t}>" for t in TASKS] + ["<lt>", "<gt>"]
                + [f"n{i}" for i in range(s.n_numbers)] + [f"e{i}" for i in range(s.n_entities)]
                + [f"r{i}" for i in range(s.n_relations)])

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        names = self.names()
        return " ".join(names[int(i)] for i in ids if int(i) != self.PAD)


def _task_index(task: str) -> int:
    if task not in TASKS:
        raise ValueError(f"tasks: unknown task {task!r}; known tasks are {TASKS}")
    return TASKS.index(task)


@dataclass(frozen=True)
class TaskData:
    """Examples of one or several tasks.

    Attributes:
        ids: ``[N, P + A]`` prompt (left-padded to P) then answer (right-padded to A).
        task: ``[N]`` task ids (indices into :data:`TASKS`).
        answer_len: ``[N]`` number of answer tokens of each example.
        spec: the :class:`TaskSpec` that made them.
    """

    ids: torch.Tensor
    task: torch.Tensor
    answer_len: torch.Tensor
    spec: TaskSpec

    @property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.spec)

    @property
    def prompt_len(self) -> int:
        return self.spec.prompt_len

    @property
    def last_prompt(self) -> int:
        """P − 1: the position of every prompt's last token (``=``)."""
        return self.spec.prompt_len - 1

    @property
    def inputs(self) -> torch.Tensor:
        """``[N, P + A − 1]``: ids without the last column."""
        return self.ids[:, :-1]

    @property
    def targets(self) -> torch.Tensor:
        """``[N, P + A − 1]``: the next id at answer tokens, IGNORE elsewhere."""
        n, length = self.ids.shape
        t = torch.arange(1, length)
        p = self.spec.prompt_len
        scored = (t >= p).unsqueeze(0) & (t.unsqueeze(0) < p + self.answer_len.unsqueeze(1))
        return torch.where(scored, self.ids[:, 1:], torch.full_like(self.ids[:, 1:], IGNORE))

    @property
    def answers(self) -> torch.Tensor:
        """``[N, A]``: the answer ids, ``<pad>`` after each answer's end."""
        return self.ids[:, self.spec.prompt_len:]

    def __len__(self) -> int:
        return self.ids.shape[0]

    def select(self, index: torch.Tensor) -> TaskData:
        """The examples at ``index`` (a bool mask or integer indices)."""
        return TaskData(self.ids[index], self.task[index], self.answer_len[index], self.spec)


def _prompt(task: str, n: int, spec: TaskSpec, vocab: Vocabulary,
            gen: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Prompt tokens (without padding) and answers ``[n, answer tokens]`` of one task."""
    head = torch.full((n, 1), vocab.task_token(task))
    sep = torch.full((n, 1), vocab.SEP)
    if task == "addition":
        ab = torch.randint(spec.modulus, (n, 2), generator=gen)
        return [head, vocab.number(ab), sep], vocab.number(ab.sum(1, keepdim=True) % spec.modulus)
    if task == "comparison":
        a = torch.randint(spec.compare_max, (n,), generator=gen)
        b = (a + torch.randint(1, spec.compare_max, (n,), generator=gen)) % spec.compare_max
        ans = torch.where(a < b, vocab.LT, vocab.GT).unsqueeze(1)
        return [head, vocab.number(torch.stack([a, b], 1)), sep], ans
    if task == "counting":
        q = torch.randint(spec.count_symbols, (n, 1), generator=gen)
        x = torch.randint(spec.count_symbols, (n, spec.count_length), generator=gen)
        count = (x == q).sum(1, keepdim=True)
        return [head, vocab.number(q), vocab.number(x), sep], vocab.number(count)
    if task == "reversal":
        x = torch.randint(spec.reverse_symbols, (n, spec.reverse_length), generator=gen)
        return [head, vocab.number(x), sep], vocab.number(x.flip(1))
    e = torch.randint(spec.n_entities, (n,), generator=gen)
    r = torch.randint(spec.n_relations, (n,), generator=gen)
    value = spec.fact_table()[e, r]
    return ([head, vocab.entity(e).unsqueeze(1), vocab.relation(r).unsqueeze(1), sep],
            vocab.number(value).unsqueeze(1))


def make_tasks(
    n_per_task: int | Mapping[str, int],
    *,
    tasks: Sequence[str] = TASKS,
    seed: int = 0,
    spec: TaskSpec | None = None,
) -> TaskData:
    """``n_per_task`` examples of each of ``tasks``, drawn from ``seed``, shuffled together.

    ``n_per_task`` is one count for every task or ``{task: count}`` (a training mixture where
    some tasks are seen more often; a task missing from it gets none, and ``tasks`` defaults to
    its keys).

    Raises:
        ValueError naming ``tasks`` for an unknown or repeated task, or ``n_per_task``.
    """
    if isinstance(n_per_task, Mapping):
        for t in n_per_task:
            _task_index(t)
        counts = {t: check_count(f"n_per_task[{t!r}]", v) for t, v in n_per_task.items()}
        if tasks is TASKS:
            tasks = [t for t in TASKS if t in counts]
        missing = [t for t in tasks if t not in counts]
        if missing:
            raise ValueError(f"n_per_task has no count for tasks {missing}")
    else:
        counts = {t: check_count("n_per_task", n_per_task) for t in TASKS}
    spec = TaskSpec() if spec is None else spec
    if not isinstance(spec, TaskSpec):
        raise TypeError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"tasks must be a non-empty sequence of task names from {TASKS}")
    for t in tasks:
        _task_index(t)
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks has repeats: {list(tasks)}")
    vocab = Vocabulary(spec)
    gen = torch.Generator().manual_seed(int(seed))
    p, a = spec.prompt_len, spec.answer_len
    rows, task_ids, lengths = [], [], []
    for t in tasks:
        n = counts[t]
        parts, ans = _prompt(t, n, spec, vocab, gen)
        prompt = torch.cat(parts, 1)
        pad_left = torch.full((n, p - prompt.shape[1]), vocab.PAD)
        pad_right = torch.full((n, a - ans.shape[1]), vocab.PAD)
        rows.append(torch.cat([pad_left, prompt, ans, pad_right], 1))
        task_ids.append(torch.full((n,), _task_index(t)))
        lengths.append(torch.full((n,), ans.shape[1]))
    order = torch.randperm(sum(len(r) for r in rows), generator=gen)
    return TaskData(torch.cat(rows)[order].long(), torch.cat(task_ids)[order],
                    torch.cat(lengths)[order], spec)
