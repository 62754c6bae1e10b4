"""The sequence-to-sequence model: an encoder over (t, y) samples, a decoder over prefix tokens.

Becker, Klein, Neitz, Parascandolo, Kilbertus (2023), "Predicting ordinary differential
equations with transformers" (NSODE): a transformer encoder reads the P observations
(t_i, y_i) of one solution as a set (time is an input feature, so irregular times need no
special treatment), and an autoregressive transformer decoder, cross-attending to the encoder's
output, writes f in prefix notation (:mod:`otkit.odes.grammar`).

- **Float encoding** (:func:`float_encode`, after Charton's sign–mantissa–exponent
  representation): x = s · m · 10^e with s ∈ {−1, 0, 1}, m ∈ [1, 10), e ∈ ℤ is fed as the
  features (s, m/10, e/E) with e clipped to [−E, E], E = 8, plus clip(x, −10, 10)/10 (the
  mantissa alone jumps at every power of ten; the clipped value trained faster here: 21 % vs
  15 % top-1 skeletons after 400 steps); a point (t, y) is 8 features. :func:`float_decode`
  inverts it.
- **Encoder**: MLP(8 → d → d) per point, then ``enc_layers`` pre-LN bidirectional blocks, no
  positions (the samples are a set). ``[B, P, 6]`` → memory ``[B, P, d]``.
- **Decoder**: token + learned position embeddings (:class:`otkit.nn.transformer.Embedding`,
  the lab's GPT-2 embedding), ``dec_layers`` pre-LN blocks of causal self-attention,
  cross-attention to the memory and an MLP; logits ``[B, T, V]``.
- **Constants**: this implementation predicts the skeleton only (every constant is the token
  ``C``) and fits the constants by least squares afterwards (:mod:`otkit.odes.fitting`), not by
  the paper's two-hot encoding over bins.
- **Training** (:func:`train_model`): teacher forcing, cross-entropy on the tokens after BOS,
  AdamW with warmup + cosine (:func:`otkit.nn.trainer.warmup_cosine`) on freshly noised copies
  of a fixed set of generated ODEs (:func:`otkit.odes.generator.generate`): each mini-batch
  draws a noise level per example from ``noises``; sampling irregularity is drawn per ODE.
- **Beam decoding** (:func:`beam_search`): width-K beam search constrained to complete prefix
  expressions (EOS exactly when the expression is complete), returning the distinct valid
  skeletons by log-probability.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from otkit.nn.trainer import warmup_cosine
from otkit.nn.transformer import Embedding, TransformerConfig

from ..validation import check_count, check_positive
from .generator import ODEBatch, generate
from .grammar import ARITY, TOKENS, parse_tokens, skeleton_tokens

__all__ = ["PAD", "BOS", "EOS", "EXPONENT", "float_encode", "float_decode", "encode_tokens",
           "ODEModelConfig", "ODETransformer", "TrainedODEModel", "train_model", "beam_search"]

PAD, BOS, EOS = 0, 1, 2
#: E of the float encoding: exponents are clipped to [−E, E].
EXPONENT = 8
_ID = {tok: i for i, tok in enumerate(TOKENS)}
_ARITY_OF_ID = torch.tensor([-1, -1, -1] + [ARITY[tok] for tok in TOKENS[3:]])


def float_encode(x: torch.Tensor) -> torch.Tensor:
    """``x: [...]`` → ``[..., 4]`` = (sign, mantissa/10, exponent/E, clip(x, −10, 10)/10),
    x = s · m · 10^e with m ∈ [1, 10); zero is (0, 0, −1, 0)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    a = x.abs()
    e = torch.floor(torch.log10(a.clamp_min(1e-300))).clamp(-EXPONENT, EXPONENT)
    m = a / torch.pow(10.0, e)
    zero = a == 0
    m = torch.where(zero, torch.zeros_like(m), m)
    e = torch.where(zero, torch.full_like(e, -EXPONENT), e)
    return torch.stack([torch.sign(x), m / 10, e / EXPONENT, x.clamp(-10, 10) / 10], dim=-1)


def float_decode(code: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`float_encode`: ``[..., 4]`` → ``[...]`` (from the first three)."""
    code = torch.as_tensor(code, dtype=torch.float64)
    return code[..., 0] * code[..., 1] * 10 * torch.pow(10.0, torch.round(code[..., 2] * EXPONENT))


def encode_tokens(skeletons, max_len: int) -> torch.Tensor:
    """``[B, max_len]`` ids: BOS, the skeleton's prefix tokens, EOS, PAD…"""
    out = torch.full((len(skeletons), max_len), PAD, dtype=torch.long)
    for i, s in enumerate(skeletons):
        ids = [BOS] + [_ID[t] for t in skeleton_tokens(s)] + [EOS]
        if len(ids) > max_len:
            raise ValueError(f"max_len={max_len} is too short for {len(ids)} tokens of {s}")
        out[i, : len(ids)] = torch.tensor(ids)
    return out


@dataclass(frozen=True)
class ODEModelConfig:
    """Sizes of :class:`ODETransformer` (the defaults train in about 20 s on one core)."""

    d_model: int = 64
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    d_mlp: int = 128
    max_len: int = 24

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "enc_layers", "dec_layers", "d_mlp", "max_len"):
            check_count(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_heads={self.n_heads}")


class ODETransformer(nn.Module):
    """``forward(t: [B, P], y: [B, P], ids: [B, T]) -> logits [B, T, V]`` (module docstring)."""

    def __init__(self, config: ODEModelConfig = ODEModelConfig()):
        super().__init__()
        if not isinstance(config, ODEModelConfig):
            raise TypeError(f"config must be an ODEModelConfig, got {type(config).__name__}")
        self.config = config
        d = config.d_model
        self.point = nn.Sequential(nn.Linear(8, d), nn.GELU(), nn.Linear(d, d))
        enc = nn.TransformerEncoderLayer(d, config.n_heads, config.d_mlp, dropout=0.0,
                                         activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, config.enc_layers, enable_nested_tensor=False)
        self.embed = Embedding(TransformerConfig(vocab_size=len(TOKENS), d_model=d,
                                                 n_heads=config.n_heads, max_len=config.max_len))
        dec = nn.TransformerDecoderLayer(d, config.n_heads, config.d_mlp, dropout=0.0,
                                         activation="gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(dec, config.dec_layers)
        self.ln = nn.LayerNorm(d)
        self.out = nn.Linear(d, len(TOKENS))

    def encode(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Memory ``[B, P, d]`` of the samples ``t, y: [B, P]``."""
        if t.ndim != 2 or t.shape != y.shape:
            raise ValueError(f"t and y must be [B, P] of the same shape, got {tuple(t.shape)} "
                             f"and {tuple(y.shape)}")
        x = torch.cat([float_encode(t), float_encode(y)], dim=-1).to(self.out.weight.dtype)
        return self.encoder(self.point(x))

    def decode(self, memory: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, V]`` of ``ids: [B, T]`` given ``memory: [B, P, d]``."""
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"ids has length {ids.shape[1]} > max_len={self.config.max_len}")
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1], dtype=memory.dtype)
        h = self.decoder(self.embed(ids), memory, tgt_mask=mask, tgt_is_causal=True)
        return self.out(self.ln(h))

    def forward(self, t: torch.Tensor, y: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(t, y), ids)


@dataclass(frozen=True, eq=False)
class TrainedODEModel:
    """A pre-trained model with its training data, loss history ``[(step, loss)]`` and the CPU
    seconds of the training thread."""

    model: ODETransformer
    data: ODEBatch
    history: tuple[tuple[int, float], ...]
    seconds: float
    noises: tuple[float, ...]


def train_model(config: ODEModelConfig = ODEModelConfig(), *, n_train: int = 4000,
                steps: int = 600, batch_size: int = 64, lr: float = 2e-3,
                noises: tuple[float, ...] = (0.0, 0.01, 0.05),
                irregularity: tuple[float, float] = (0.0, 1.0), n_points: int = 32,
                t_max: float = 4.0, seed: int = 0, log_every: int = 50) -> TrainedODEModel:
    """Pre-train an :class:`ODETransformer` on ``n_train`` generated ODEs (module docstring)."""
    check_count("n_train", n_train)
    check_count("steps", steps)
    check_count("batch_size", batch_size)
    check_positive("lr", lr)
    if not noises or any(not (isinstance(s, (int, float)) and s >= 0) for s in noises):
        raise ValueError(f"noises must be a non-empty tuple of levels >= 0, got {noises!r}")
    started = time.thread_time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = generate(n_train, n_points=n_points, t_max=t_max, irregularity=irregularity,
                    generator=gen)
    ids = encode_tokens(data.skeletons, config.max_len)
    model = ODETransformer(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    levels = torch.tensor(noises, dtype=torch.float64)
    history = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * warmup_cosine(step, steps, warmup, 0.05)
        idx = torch.randint(n_train, (batch_size,), generator=gen)
        y_clean = data.y_clean[idx]
        sigma = levels[torch.randint(len(noises), (batch_size,), generator=gen)]
        rms = y_clean.pow(2).mean(1, keepdim=True).sqrt()
        y = y_clean + sigma[:, None] * rms * torch.randn(y_clean.shape, generator=gen,
                                                         dtype=torch.float64)
        batch = ids[idx]
        logits = model(data.t[idx], y, batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                               ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            history.append((step, float(loss.detach())))
    model.eval()
    return TrainedODEModel(model, data, tuple(history), time.thread_time() - started,
                           tuple(float(s) for s in noises))


@torch.no_grad()
def beam_search(model: ODETransformer, t: torch.Tensor, y: torch.Tensor, beam: int = 4
                ) -> list[list[tuple[tuple[int, ...], float]]]:
    """Constrained beam search for each of B problems (``t, y: [B, P]``).

    Every beam stays a prefix of a complete expression: while the expression still needs
    operands (1 + Σ (arity − 1) > 0 over the tokens so far) EOS is forbidden, and when it is
    complete only EOS is allowed; a token is forbidden if the remaining length could not
    complete it. Returns, per problem, up to ``beam`` distinct valid skeletons with their
    log-probabilities, best first (sequences that are not a sum of library terms, or not in the
    canonical order of :func:`otkit.odes.grammar.skeleton_tokens`, are dropped).
    """
    check_count("beam", beam)
    if not isinstance(model, ODETransformer):
        raise TypeError(f"model must be an ODETransformer, got {type(model).__name__}")
    t = torch.as_tensor(t, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if t.ndim == 1:
        t, y = t[None], y[None]
    was_training = model.training
    model.eval()
    b, k, length = t.shape[0], beam, model.config.max_len
    memory = model.encode(t, y).repeat_interleave(k, dim=0)  # [B K, P, d]
    seqs = torch.full((b * k, 1), BOS, dtype=torch.long)
    scores = torch.full((b, k), -math.inf)
    scores[:, 0] = 0.0
    need = torch.ones(b * k, dtype=torch.long)  # operands still needed; 0 = complete
    done = torch.zeros(b * k, dtype=torch.bool)
    arity = _ARITY_OF_ID
    v = len(TOKENS)
    for pos in range(1, length):
        logp = F.log_softmax(model.decode(memory, seqs)[:, -1].float(), dim=-1)  # [B K, V]
        allowed = torch.zeros(b * k, v, dtype=torch.bool)
        remaining = length - pos - 1  # positions left after this one, for EOS
        expr_ok = (need[:, None] + (arity[None] - 1)) <= remaining
        allowed[:, 3:] = ((need > 0)[:, None] & expr_ok[:, 3:])
        allowed[:, EOS] = (need == 0) & ~done
        logp = logp.masked_fill(~allowed, -math.inf)
        logp[done] = -math.inf
        logp[done, PAD] = 0.0
        cand = (scores.reshape(-1, 1) + logp).reshape(b, k * v)
        top, where = cand.topk(k, dim=1)
        parent = (where // v) + torch.arange(b)[:, None] * k
        token = where % v
        parent, token = parent.reshape(-1), token.reshape(-1)
        seqs = torch.cat([seqs[parent], token[:, None]], dim=1)
        need = need[parent] + torch.where(token >= 3, arity[token.clamp_min(0)] - 1, 0)
        need = torch.where(token == EOS, torch.zeros_like(need), need)
        done = done[parent] | (token == EOS) | (token == PAD)
        scores = top
        if bool(done.all()):
            break
    model.train(was_training)
    out = []
    for i in range(b):
        found: dict[tuple[int, ...], float] = {}
        for j in range(k):
            score = float(scores[i, j])
            if not math.isfinite(score):
                continue
            row = [TOKENS[int(x)] for x in seqs[i * k + j, 1:]]
            if "<eos>" not in row:
                continue
            try:
                skeleton = parse_tokens(row[: row.index("<eos>")])
            except ValueError:
                continue
            if skeleton_tokens(skeleton) != row[: row.index("<eos>")]:
                continue  # not the canonical order the model is trained on
            found.setdefault(skeleton, score)
        out.append(sorted(found.items(), key=lambda kv: -kv[1]))
    return out
