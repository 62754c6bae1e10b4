r"""Steering a small GPT-2 on a generated corpus whose topic is measured exactly.

AcT (Rodriguez et al. 2024, "Controlling Language and Diffusion Models by Transporting
Activations") and LinEAS (Rodriguez et al. 2025) steer a language model towards a concept (or
away from it) by mapping the activations of some of its layers from a *source* set of texts
(without the concept) to a *target* set (with it). Checking such a claim needs a concept that
can be measured exactly in generated text and a model that can be trained in seconds, with no
download: this module provides both.

**The corpus.** Every sentence has the fixed form

    <det> <adjective> <noun> <verb> <adverb> <ending>

whose adjective, noun and verb come from the vocabulary of one *topic* (weather, food, sports,
music); determiners, adverbs and endings are shared by all topics. The concept is a topic, by
default ``"weather"``, which opens a minority of the training documents (20%): a sentence
*has the concept* when one of its words belongs to that topic's vocabulary, a test that is exact
on generated text too. Sentences have the same length, so batches need no padding and the
mean over tokens (AcT's pooling) never mixes in pad tokens.

**The model.** A GPT-2 (``transformers.GPT2LMHeadModel``) built from a small
``GPT2Config`` (4 blocks of width 64, a word-level vocabulary of about 80 words), trained from
scratch on the corpus by next-token prediction; quick settings train in about 15 s on one CPU
thread.

**Documents.** The training text is made of two-sentence documents whose second sentence keeps
the first one's topic with probability 3/4 and otherwise switches: the topic is a latent state
the model carries from one sentence to the next, and it is that state which steering moves.

**The task.** ``mode="induce"`` fits maps from documents without the concept (source) to
documents about it (target) and continues held-out first sentences without the concept;
``mode="remove"`` the reverse. The steered modules are the outputs of the transformer blocks
(the residual stream, ``transformer.h.<i>``). :meth:`TextSteeringTask.evaluate` reports, per
strength λ, the *concept rate* (the share of continuations about the concept, sampled with the
same noise at every λ) and the *perplexity* of held-out documents without the concept, the text
that steering should leave alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..nn.hooks import POOLS
from ..validation import (
    check_choice,
    check_count,
    check_generator,
    check_probability,
    renamed_keyword,
)
from .hooks import steer
from .intervention import Intervention

__all__ = [
    "TOPICS",
    "MODES",
    "WordTokenizer",
    "Corpus",
    "make_corpus",
    "tiny_gpt2",
    "train_language_model",
    "generate",
    "SENTENCE_WORDS",
    "perplexity",
    "has_concept",
    "concept_rate",
    "TextSteeringTask",
    "text_steering_task",
]

#: Each topic's own words: (adjectives, nouns, verbs).
TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "weather": (
        ("cold", "grey", "windy", "sunny", "icy", "humid"),
        ("rain", "storm", "cloud", "wind", "snow", "fog"),
        ("falls", "blows", "clears", "drifts", "gathers", "pours"),
    ),
    "food": (
        ("sweet", "fresh", "salty", "ripe", "crisp", "spicy"),
        ("bread", "soup", "cheese", "apple", "pasta", "cake"),
        ("bakes", "cools", "simmers", "melts", "sizzles", "rises"),
    ),
    "sports": (
        ("fast", "strong", "young", "tired", "proud", "local"),
        ("team", "runner", "coach", "player", "keeper", "striker"),
        ("wins", "scores", "trains", "sprints", "defends", "passes"),
    ),
    "music": (
        ("loud", "soft", "gentle", "jazzy", "lively", "mellow"),
        ("band", "piano", "choir", "guitar", "singer", "drummer"),
        ("plays", "sings", "hums", "tunes", "echoes", "rehearses"),
    ),
}
DETERMINERS = ("the", "a", "this", "every", "one", "that")
ADVERBS = ("slowly", "quietly", "again", "today", "often", "early", "late", "together")
ENDINGS = ("now", "here", "there", "outside", "tonight", "indeed")
MODES = ("induce", "remove")

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class WordTokenizer:
    """A word-level tokenizer over a fixed vocabulary: ids 0, 1, 2 are PAD, BOS and EOS."""

    def __init__(self, words: Sequence[str]) -> None:
        self.vocabulary: tuple[str, ...] = (PAD, BOS, EOS, *sorted(set(words)))
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, sentences: Sequence[str], *, eos: bool = True) -> torch.Tensor:
        """``[k, T]`` ids of equal-length texts, each after a BOS (and before an EOS if ``eos``)."""
        rows = []
        for s in sentences:
            words = s.split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise ValueError(f"sentences contain words outside the vocabulary: {unknown[:5]}")
            rows.append([self.bos_id, *(self.index[w] for w in words)] + [self.eos_id] * eos)
        if len({len(r) for r in rows}) > 1:
            raise ValueError("sentences must all have the same number of words")
        return torch.tensor(rows, dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Sentences from ``[k, T]`` ids: BOS is dropped and each row stops at its first EOS."""
        out = []
        for row in ids.tolist():
            words = []
            for i in row:
                if i == self.eos_id:
                    break
                if i not in (self.bos_id, self.pad_id):
                    words.append(self.vocabulary[i])
            out.append(" ".join(words))
        return out


def _vocabulary() -> list[str]:
    words = [*DETERMINERS, *ADVERBS, *ENDINGS]
    for parts in TOPICS.values():
        for group in parts:
            words.extend(group)
    return words


def _check_concept(concept: object) -> str:
    return check_choice("concept", concept, TOPICS)  # type: ignore[return-value]


def has_concept(sentence: str, concept: str = "weather") -> bool:
    """Whether ``sentence`` uses a word of the topic ``concept`` (an exact test)."""
    words = set(sum(TOPICS[_check_concept(concept)], ()))
    return any(w in words for w in sentence.split())


def concept_rate(sentences: Sequence[str], concept: str = "weather") -> float:
    """The share of ``sentences`` that have the concept."""
    if not sentences:
        raise ValueError("sentences is empty")
    return sum(has_concept(s, concept) for s in sentences) / len(sentences)


@dataclass(frozen=True)
class Corpus:
    """Generated two-sentence documents and the topic of each of their sentences.

    ``documents[i]`` is a string of 2 × 6 words; ``topics[i]`` the topics of its two sentences.
    """

    documents: tuple[str, ...]
    topics: tuple[tuple[str, str], ...]

    def select(self, first: bool | None = None, second: bool | None = None,
               concept: str = "weather") -> list[str]:
        """Documents whose first / second sentence is (True) or is not (False) about ``concept``."""
        out = []
        for doc, (t1, t2) in zip(self.documents, self.topics):
            if first is not None and (t1 == concept) != first:
                continue
            if second is not None and (t2 == concept) != second:
                continue
            out.append(doc)
        return out


SENTENCE_WORDS = 6


def _sentence(topic: str, pick) -> str:
    adjectives, nouns, verbs = TOPICS[topic]
    return " ".join((pick(DETERMINERS), pick(adjectives), pick(nouns), pick(verbs), pick(ADVERBS),
                     pick(ENDINGS)))


def make_corpus(
    n: int, *, concept: str = "weather", concept_share: float = 0.2, stay: float = 0.75,
    generator: torch.Generator | int | None = 0, seed: int | None = None,
) -> Corpus:
    """``n`` two-sentence documents drawn from ``generator`` (a CPU ``torch.Generator`` or an
    int seed; the default, 0, makes a call reproducible; ``None``: torch's global generator).
    ``seed``: the old name of ``generator``, still accepted (keyword only) with a
    ``DeprecationWarning``.

    The first sentence is about ``concept`` with probability ``concept_share`` and otherwise
    about one of the other topics, uniformly; the second keeps the first one's topic with
    probability ``stay`` and otherwise switches to one of the other three topics, uniformly.
    The topic is thus a latent state that a language model must carry from one sentence to
    the next: the state that steering moves.
    """
    n = check_count("n", n)
    concept = _check_concept(concept)
    share = check_probability("concept_share", concept_share, closed=True)
    stay = check_probability("stay", stay, closed=True)
    gen = check_generator(renamed_keyword("make_corpus", "seed", seed, "generator", generator, 0))
    others = [t for t in TOPICS if t != concept]

    def pick(options: Sequence[str]) -> str:
        return options[int(torch.randint(len(options), (1,), generator=gen))]

    documents, topics = [], []
    for _ in range(n):
        first = concept if float(torch.rand((), generator=gen)) < share else pick(others)
        second = first
        if float(torch.rand((), generator=gen)) >= stay:
            second = pick([t for t in TOPICS if t != first])
        documents.append(_sentence(first, pick) + " " + _sentence(second, pick))
        topics.append((first, second))
    return Corpus(tuple(documents), tuple(topics))


def tiny_gpt2(vocab_size: int, *, n_layer: int = 4, n_embd: int = 64, n_head: int = 4,
              n_positions: int = 16, seed: int = 0) -> nn.Module:
    """A GPT-2 built from a config (no download), without dropout, seeded."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=check_count("vocab_size", vocab_size), n_positions=n_positions,
        n_embd=n_embd, n_layer=n_layer, n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


def train_language_model(
    model: nn.Module, ids: torch.Tensor, *, steps: int = 600, batch_size: int = 64,
    lr: float = 3e-3, seed: int = 0,
) -> torch.Tensor:
    """Next-token training of ``model`` on ``ids: [k, T]`` with Adam; returns the losses ``[steps]``.

    The model is left in eval mode."""
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = torch.empty(steps)
    model.train()
    for step in range(steps):
        batch = ids[torch.randint(ids.shape[0], (batch_size,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        losses[step] = loss.detach()
    model.eval()
    return losses


@torch.no_grad()
def generate(model: nn.Module, tokenizer: WordTokenizer, prompts: torch.Tensor, length: int, *,
             generator: torch.Generator | int | None = 0, temperature: float = 1.0,
             seed: int | None = None) -> list[str]:
    """Continue ``prompts: [k, T0]`` (ids from ``tokenizer.encode(..., eos=False)``) by
    ``length`` sampled words; returns the continuations' text.

    Sampling is Gumbel-max with noise drawn from ``generator`` (a CPU ``torch.Generator``, or
    an int seed of a fresh one; ``None``: torch's global generator). With an int seed (the
    default, 0) every call draws the same noise, so one model under two interventions is
    compared on common random numbers. ``seed``: the old name of ``generator``, still
    accepted (keyword only) with a ``DeprecationWarning``."""
    gen = check_generator(renamed_keyword("generate", "seed", seed, "generator", generator, 0))
    ids = prompts
    for _ in range(check_count("length", length)):
        logits = model(input_ids=ids).logits[:, -1].float() / temperature
        logits[:, [tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id]] = -math.inf
        noise = torch.rand(logits.shape, generator=gen).clamp_min_(1e-20)
        ids = torch.cat([ids, (logits - torch.log(-torch.log(noise))).argmax(1, keepdim=True)], 1)
    return tokenizer.decode(ids[:, prompts.shape[1]:])


@torch.no_grad()
def perplexity(model: nn.Module, ids: torch.Tensor) -> float:
    """exp of the mean next-token negative log-likelihood of ``ids: [k, T]``."""
    return math.exp(float(model(input_ids=ids, labels=ids).loss))


def _prompts(tokenizer: WordTokenizer, concept: str, mode: str, count: int, seed: int) -> torch.Tensor:
    """``[count, 7]`` ids of held-out first sentences: without the concept to induce it, about
    it to remove it."""
    firsts = make_corpus(4 * count + 64, concept=concept, concept_share=0.5, generator=seed + 2)
    chosen = firsts.select(first=(mode == "remove"), concept=concept)[:count]
    return tokenizer.encode([" ".join(doc.split()[:SENTENCE_WORDS]) for doc in chosen], eos=False)


@dataclass(frozen=True, eq=False)
class TextSteeringTask:
    """A trained GPT-2, its tokenizer and the texts to fit and judge an intervention.

    Attributes:
        model, tokenizer: the language model and its word-level tokenizer.
        concept, mode: the topic, and ``"induce"`` or ``"remove"``.
        source, target: lists of ``[B, T]`` id batches of whole documents to fit maps on
            (``forward`` runs one): documents without the concept and documents about it
            (swapped for ``"remove"``).
        modules: the steered modules' regex.
        pool: how to pool their activations when fitting (``"none"``: every token is a
            sample; see :func:`text_steering_task`).
        prompts: ``[k, T0]`` held-out first sentences to continue (without the concept to
            induce it, about it to remove it).
        held_out: ``[k, T]`` held-out documents without the concept (perplexity).
        seed: the sampling noise's seed.
        training_seconds, final_loss: the language model's training.
    """

    model: nn.Module
    tokenizer: WordTokenizer
    concept: str
    mode: str
    source: list[torch.Tensor]
    target: list[torch.Tensor]
    modules: str
    pool: str
    prompts: torch.Tensor
    held_out: torch.Tensor
    seed: int
    training_seconds: float
    final_loss: float

    @staticmethod
    def forward(model: nn.Module, batch: torch.Tensor):
        """One batch of ids through the model (the ``forward`` of :mod:`otkit.steering`)."""
        return model(input_ids=batch)

    def with_mode(self, mode: str) -> TextSteeringTask:
        """The same model with the other ``mode``: source and target swapped, and prompts
        without the concept (``"induce"``) or about it (``"remove"``)."""
        check_choice("mode", mode, MODES)
        if mode == self.mode:
            return self
        prompts = _prompts(self.tokenizer, self.concept, mode, self.prompts.shape[0], self.seed)
        return replace(self, mode=mode, source=self.target, target=self.source, prompts=prompts)

    def samples(self, intervention: Intervention | None = None, strength: float = 1.0, *,
                count: int | None = None) -> list[str]:
        """Continuations (one sentence each) of the first ``count`` prompts."""
        prompts = self.prompts if count is None else self.prompts[: check_count("count", count)]
        if intervention is None:
            return generate(self.model, self.tokenizer, prompts, SENTENCE_WORDS,
                            generator=self.seed)
        with steer(self.model, intervention, strength=strength):
            return generate(self.model, self.tokenizer, prompts, SENTENCE_WORDS,
                            generator=self.seed)

    def perplexity(self, intervention: Intervention | None = None, strength: float = 1.0) -> float:
        """Perplexity of the held-out documents without the concept."""
        if intervention is None:
            return perplexity(self.model, self.held_out)
        with steer(self.model, intervention, strength=strength):
            return perplexity(self.model, self.held_out)

    def evaluate(self, intervention: Intervention | None, strengths: Sequence[float]) -> list[dict]:
        """One row per strength: ``strength``, ``concept_rate`` (of the continuations),
        ``perplexity`` (held-out text without the concept)."""
        rows = []
        for lam in strengths:
            texts = self.samples(intervention, lam)
            rows.append({
                "strength": float(lam),
                "concept_rate": concept_rate(texts, self.concept),
                "perplexity": self.perplexity(intervention, lam),
            })
        return rows


def text_steering_task(
    concept: str = "weather", mode: str = "induce", *, seed: int = 0, quick: bool = True,
    n_fit: int = 256, batch_size: int = 64, prompts: int = 400, steps: int | None = None,
    modules: str = r"transformer\.h\.\d+",
    pool: str = "none",
) -> TextSteeringTask:
    """Generate the corpus, train the GPT-2 and draw the texts for steering.

    Args:
        concept: the topic to induce or remove.
        mode: ``"induce"`` or ``"remove"``.
        seed: seeds the corpus, the model and the sampling noise.
        quick: 300 training steps on 4,000 documents (about 15 s on one thread), else 2,000
            on 20,000.
        n_fit: documents per side to fit interventions on (e.g. 32 for LinEAS's few-shot
            claim), cut into batches of ``batch_size``; drawn afresh, apart from the training
            corpus, as are the prompts and the held-out documents.
        prompts: number of prompts continued by :meth:`TextSteeringTask.samples`.
        steps: training steps (overrides ``quick``'s).
        modules: regex of the steered modules (default: every transformer block's output).
        pool: the pooling to fit with. AcT pools by the mean over tokens, but a map fitted on
            means meets token activations far outside the means' range, where Linear-AcT
            leaves them alone: on this model (seed 0, quick) mean pooling moved the concept
            rate from 0.08 to 0.17 at λ = 1 and token-level fitting (``"none"``) to 0.44,
            for a perplexity of held-out text from 6.25 to 6.36 and 6.65.
    """
    concept = _check_concept(concept)
    check_choice("mode", mode, MODES)
    n_fit = check_count("n_fit", n_fit)
    batch_size = check_count("batch_size", batch_size)
    prompts = check_count("prompts", prompts)
    check_choice("pool", pool, POOLS)
    steps = (300 if quick else 2000) if steps is None else check_count("steps", steps)
    tokenizer = WordTokenizer(_vocabulary())
    corpus = make_corpus(4000 if quick else 20000, concept=concept, generator=seed)
    model = tiny_gpt2(len(tokenizer), seed=seed)
    start = time.perf_counter()
    losses = train_language_model(model, tokenizer.encode(corpus.documents), steps=steps,
                                  seed=seed)
    seconds = time.perf_counter() - start

    fit = make_corpus(6 * n_fit + 64, concept=concept, concept_share=0.5, generator=seed + 1)
    without = fit.select(first=False, second=False, concept=concept)[:n_fit]
    about = fit.select(first=True, second=True, concept=concept)[:n_fit]
    if len(without) < n_fit or len(about) < n_fit:
        raise RuntimeError("the fit corpus is too small for n_fit documents per side")
    without, about = tokenizer.encode(without), tokenizer.encode(about)
    source, target = (without, about) if mode == "induce" else (about, without)
    prompt_ids = _prompts(tokenizer, concept, mode, prompts, seed)
    held = make_corpus(512, concept=concept, concept_share=0.0, stay=1.0, generator=seed + 3)
    return TextSteeringTask(
        model=model, tokenizer=tokenizer, concept=concept, mode=mode,
        source=list(source.split(batch_size)), target=list(target.split(batch_size)),
        modules=modules, pool=pool, prompts=prompt_ids,
        held_out=tokenizer.encode(held.documents), seed=seed,
        training_seconds=seconds, final_loss=float(losses[-50:].mean()),
    )
