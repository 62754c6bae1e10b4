"""A generated long-context lookup task and the small transformer that solves it.

The experiment of Nectar (Monteiro, Klein, Ablin, Cuturi 2026) needs a model that must read a
long cache to answer: a context of n tokens holding R ``key:value;`` records scattered among
filler tokens, then questions ``?key`` each followed by its answer ``value``. A word-level
tokenizer writes each record ``key:value;`` as one token r(k, v) (K keys × M values record
tokens), each question ``?key`` as one token, each answer as a value token:

    context  = f f r(k₁, v₁) f … r(k_R, v_R) f          (n tokens; R distinct keys, fillers f)
    question = ?k_{i₁} v_{i₁} ?k_{i₂} v_{i₂} …            (Q questions about the R keys)

Only the answers are scored: the target after ``?k`` is the value v that the context's record
gives k. Chance is 1/M.

The model is :class:`otkit.nn.transformer.Transformer` with its learned position table set to
zero and frozen (no positional encoding, "NoPE"): the lookup needs none (the record token holds
the key and the value), and a model trained on short contexts then reads contexts of any length
up to ``max_len`` (learned absolute positions would be untrained beyond the training length).
Shapes: ids ``[B, n + 2Q]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..nn.trainer import IGNORE, TrainerConfig, TrainResult, train
from ..nn.transformer import Transformer, TransformerConfig
from ..validation import check_count

__all__ = ["LookupSpec", "LookupData", "make_lookup", "lookup_model", "train_lookup",
           "answer_scores", "CURRICULUM"]


@dataclass(frozen=True)
class LookupSpec:
    """Sizes of the lookup task.

    Attributes:
        n_keys: K, key tokens (R ≤ K distinct keys per context).
        n_values: M, value tokens (chance accuracy 1/M).
        n_filler: filler tokens between records.
        n_records: R, records per context.
        n_questions: Q, questions after the context.
    """

    n_keys: int = 8
    n_values: int = 8
    n_filler: int = 16
    n_records: int = 8
    n_questions: int = 8

    def __post_init__(self) -> None:
        for name in ("n_keys", "n_values", "n_filler", "n_records", "n_questions"):
            check_count(name, getattr(self, name), minimum=2 if name == "n_values" else 1)
        if self.n_records > self.n_keys:
            raise ValueError(f"n_records={self.n_records} must be <= n_keys={self.n_keys}: "
                             "records have distinct keys")

    # token id layout: fillers, records r(k, v) = k·M + v, questions ?k, values v
    @property
    def record0(self) -> int:
        return self.n_filler

    @property
    def question0(self) -> int:
        return self.n_filler + self.n_keys * self.n_values

    @property
    def value0(self) -> int:
        return self.question0 + self.n_keys

    @property
    def vocab_size(self) -> int:
        return self.value0 + self.n_values


@dataclass(frozen=True)
class LookupData:
    """Sequences of the lookup task.

    Attributes:
        ids: ``[N, n + 2Q]`` token ids (context, then Q pairs ``?k v``).
        n: context length.
        spec: the task's sizes.
    """

    ids: torch.Tensor
    n: int
    spec: LookupSpec

    @property
    def inputs(self) -> torch.Tensor:
        """``[N, n + 2Q − 1]``: every token but the last."""
        return self.ids[:, :-1]

    @property
    def targets(self) -> torch.Tensor:
        """``[N, n + 2Q − 1]``: the answer after each ``?k``, :data:`IGNORE` elsewhere."""
        t = torch.full_like(self.inputs, IGNORE)
        q = self.question_positions
        t[:, q] = self.ids[:, q + 1]
        return t

    @property
    def question_positions(self) -> torch.Tensor:
        """``[Q]``: positions of the ``?k`` tokens (whose next token is the answer)."""
        return self.n + 2 * torch.arange(self.spec.n_questions)

    @property
    def answers(self) -> torch.Tensor:
        """``[N, Q]``: the answer ids."""
        return self.ids[:, self.question_positions + 1]


def make_lookup(spec: LookupSpec, n: int, count: int, *, seed: int = 0) -> LookupData:
    """``count`` sequences with contexts of ``n`` tokens, drawn from a generator seeded by
    ``seed``."""
    if not isinstance(spec, LookupSpec):
        raise TypeError(f"spec must be a LookupSpec, got {type(spec).__name__}")
    n = check_count("n", n)
    count = check_count("count", count)
    if n < spec.n_records:
        raise ValueError(f"n={n} must be >= spec.n_records={spec.n_records}")
    g = torch.Generator().manual_seed(int(seed))
    K, M, R, Q = spec.n_keys, spec.n_values, spec.n_records, spec.n_questions
    ids = torch.randint(0, spec.n_filler, (count, n + 2 * Q), generator=g)
    keys = torch.argsort(torch.rand(count, K, generator=g), dim=1)[:, :R]       # [N, R] distinct
    values = torch.randint(0, M, (count, R), generator=g)                         # [N, R]
    slots = torch.argsort(torch.rand(count, n, generator=g), dim=1)[:, :R]        # [N, R]
    rows = torch.arange(count).unsqueeze(1)
    ids[rows, slots] = spec.record0 + keys * M + values
    asked = torch.randint(0, R, (count, Q), generator=g)                          # [N, Q]
    pos = n + 2 * torch.arange(Q)
    ids[:, pos] = spec.question0 + keys.gather(1, asked)
    ids[:, pos + 1] = spec.value0 + values.gather(1, asked)
    return LookupData(ids, n, spec)


def lookup_model(spec: LookupSpec, *, max_len: int, d_model: int = 64, n_layers: int = 2,
                 n_heads: int = 4, d_mlp: int = 128, seed: int = 0) -> Transformer:
    """A :class:`Transformer` for ``spec``'s vocabulary with its position table zero and
    frozen (see the module docstring), and a factored initialization of the token table that
    tells the tokenizer's structure (random a_k per key, b_v per value, c for "?"):
    E[r(k, v)] = a_k + b_v, E[?k] = a_k + c, E[v] = b_v; training is then free to move every
    row. Without it the lookup was learned by 1 of 4 seeds within the laptop budget."""
    torch.manual_seed(int(seed))
    config = TransformerConfig(vocab_size=spec.vocab_size, d_model=d_model, n_layers=n_layers,
                               n_heads=n_heads, d_mlp=d_mlp, max_len=max_len)
    model = Transformer(config)
    with torch.no_grad():
        model.embedding.position.weight.zero_()
        # factored initialization: E[r(k, v)] = a_k + b_v, E[?k] = a_k + c, E[v] = b_v
        a = 0.02 * torch.randn(spec.n_keys, d_model)
        b = 0.02 * torch.randn(spec.n_values, d_model)
        c = 0.02 * torch.randn(d_model)
        table = model.embedding.token.weight
        table[spec.record0:spec.question0] = (a[:, None] + b[None]).reshape(-1, d_model)
        table[spec.question0:spec.value0] = a + c
        table[spec.value0:] = b
    model.embedding.position.weight.requires_grad_(False)
    return model


#: The curriculum of :func:`train_lookup`: (context length, steps, batch size, peak lr) per
#: stage. Contexts of 12 tokens first (8 records, 4 fillers: dense signal, the lookup is
#: learned there; 4 of 4 seeds checked), then a short stage on 128 tokens (the model learns to
#: ignore more filler, and reads 512 tokens at > 95% accuracy).
CURRICULUM = ((12, 400, 64, 3e-3), (128, 100, 16, 1e-3))


def train_lookup(
    spec: LookupSpec,
    *,
    max_len: int = 2048,
    curriculum: tuple[tuple[int, int, int, float], ...] = CURRICULUM,
    seed: int = 0,
    **model_kwargs,
) -> tuple[Transformer, list[TrainResult]]:
    """Train :func:`lookup_model` on fresh contexts, stage by stage (``curriculum``: (n,
    steps, batch size, lr) each; AdamW of :func:`otkit.nn.trainer.train`, warmup 10%, no
    weight decay). Returns ``(model, results)``; the model is in eval mode and reads contexts
    up to ``max_len − 2Q`` tokens."""
    if not curriculum:
        raise ValueError("curriculum must hold at least one stage (n, steps, batch_size, lr)")
    model = lookup_model(spec, max_len=max_len, seed=seed, **model_kwargs)
    params = [p for p in model.parameters() if p.requires_grad]
    results = []
    for stage, (n, steps, batch_size, lr) in enumerate(curriculum):
        data = make_lookup(spec, n, max(batch_size, steps * batch_size // 4),
                           seed=seed + 10_000 * (stage + 1))
        config = TrainerConfig(steps=steps, batch_size=batch_size, lr=lr,
                               warmup=max(1, steps // 10), weight_decay=0.0, eval_every=steps)
        results.append(train(model, data.inputs, data.targets, config=config,
                             groups=[{"params": params}], seed=seed + stage, progress=False))
    return model, results


@torch.no_grad()
def answer_scores(logits: torch.Tensor, data: LookupData) -> tuple[torch.Tensor, torch.Tensor]:
    """``(correct [N, Q] bool, loss [N, Q])`` of logits at the question positions.

    ``logits``: ``[N, n + 2Q − 1, V]`` (the whole sequence) or ``[N, Q, V]`` (the question
    positions only); ``loss`` is the cross-entropy of the answer (the next-token loss)."""
    if logits.shape[1] != data.spec.n_questions:
        logits = logits[:, data.question_positions]
    answers = data.answers
    correct = logits.argmax(-1) == answers
    loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), answers, reduction="none")
    return correct, loss
