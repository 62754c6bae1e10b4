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
- **Constants by two-hot bins** (NSODE): every constant is the token ``C`` in the sequence, and
  a second head on the same decoder state, ``constant: d → K``, predicts its value as a
  categorical distribution over a fixed grid of K bins b_1 < … < b_K (:func:`constant_bins`:
  K = ``n_bins`` evenly spaced in [−``constant_range``, ``constant_range``], which covers the
  generator's |c| ≤ 2). The target of a value c ∈ [b_k, b_{k+1}] is its *two-hot* encoding
  (:func:`two_hot_encode`, after Schrittwieser et al. 2020, MuZero),

      w_k = (b_{k+1} − c) / (b_{k+1} − b_k),   w_{k+1} = 1 − w_k,   all other weights 0,

  so that Σ_j w_j b_j = c exactly (lossless inside the range, no rounding); the head is trained
  by the cross-entropy −Σ_j w_j log softmax(z)_j, and a value is read back as the expectation
  Σ_j softmax(z)_j b_j (:func:`two_hot_decode`, the inverse of the encoding). The head reads
  the state at the position whose next token is ``C`` (the state that writes ``C``), and the
  k-th ``C`` of a sequence is the constant of its k-th term. :func:`predict_constants` gives the
  network's constants ``[S, 7]`` for given skeletons (one teacher-forced pass). What we could
  not check against the paper's own text (only its summary: two-hot constants, "no rounding or
  separate optimization"): its bin grid, its read-out rule and whether the decoder is fed the
  predicted value. Here the grid is ours, the read-out is the expectation (the exact inverse of
  the encoding), and the decoder's next input is the token ``C``. Whether the study takes these
  constants or least-squares ones is :func:`otkit.odes.study.predict`'s choice.
- **Training** (:func:`train_model`): teacher forcing, cross-entropy on the tokens after BOS
  plus ``constant_weight`` × the two-hot cross-entropy of the constants,
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
from .grammar import (
    ARITY,
    N_TERMS,
    TOKENS,
    check_skeleton,
    parse_tokens,
    skeleton_tokens,
)

__all__ = ["PAD", "BOS", "EOS", "EXPONENT", "float_encode", "float_decode", "encode_tokens",
           "constant_bins", "two_hot_encode", "two_hot_decode", "encode_constants",
           "ODEModelConfig", "ODETransformer", "TrainedODEModel", "train_model", "beam_search",
           "predict_constants"]

PAD, BOS, EOS = 0, 1, 2
#: E of the float encoding: exponents are clipped to [−E, E].
EXPONENT = 8
_ID = {tok: i for i, tok in enumerate(TOKENS)}
_ARITY_OF_ID = torch.tensor([-1, -1, -1] + [ARITY[tok] for tok in TOKENS[3:]])
_C = _ID["C"]


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


def constant_bins(n_bins: int, constant_range: float) -> torch.Tensor:
    """The two-hot grid: ``[n_bins]`` float64 evenly spaced in [−constant_range, constant_range]."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    check_positive("constant_range", constant_range)
    return torch.linspace(-float(constant_range), float(constant_range), n_bins,
                          dtype=torch.float64)


def _check_bins(bins: object) -> torch.Tensor:
    b = torch.as_tensor(bins, dtype=torch.float64)
    if b.ndim != 1 or b.numel() < 2:
        raise ValueError(f"bins must be a 1-D grid of at least 2 values, got shape {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()) or not bool((b.diff() > 0).all()):
        raise ValueError("bins must be finite and strictly increasing")
    return b


def two_hot_encode(values: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot weights ``[..., K]`` of ``values: [...]`` on ``bins: [K]`` (module docstring):
    the two neighbouring bins get (b_{k+1} − c, c − b_k) / (b_{k+1} − b_k), so the weights are
    ≥ 0, sum to 1 and their mean Σ w_j b_j is c.

    Raises:
        ValueError naming ``values`` when a value is not finite or lies outside
        [bins[0], bins[−1]], and naming ``bins`` when the grid is not 1-D, strictly increasing.
    """
    b = _check_bins(bins)
    c = torch.as_tensor(values, dtype=torch.float64)
    if not bool(torch.isfinite(c).all()):
        raise ValueError("values must be finite")
    if c.numel() and (float(c.min()) < float(b[0]) or float(c.max()) > float(b[-1])):
        raise ValueError(f"values must lie in the bins' range [{float(b[0]):g}, {float(b[-1]):g}], "
                         f"got [{float(c.min()):g}, {float(c.max()):g}]")
    k = (torch.searchsorted(b, c.contiguous(), right=True) - 1).clamp(0, b.numel() - 2)
    lo, hi = b[k], b[k + 1]
    upper = (c - lo) / (hi - lo)
    out = torch.zeros(*c.shape, b.numel(), dtype=torch.float64)
    out.scatter_(-1, k[..., None], (1 - upper)[..., None])
    out.scatter_add_(-1, (k + 1)[..., None], upper[..., None])
    return out


def two_hot_decode(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """The value Σ_j p_j b_j of ``probs: [..., K]`` (a distribution on ``bins: [K]``, e.g. a
    softmax or :func:`two_hot_encode`'s weights): ``[...]`` float64.

    Raises:
        ValueError naming ``probs`` when its last axis is not K, an entry is negative or not
        finite, or a row does not sum to 1 (within 1e-6).
    """
    b = _check_bins(bins)
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.ndim < 1 or p.shape[-1] != b.numel():
        raise ValueError(f"probs must be [..., {b.numel()}] (one weight per bin), got "
                         f"{tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("probs must be finite and non-negative")
    if p.numel() and float((p.sum(-1) - 1).abs().max()) > 1e-6:
        raise ValueError("probs must sum to 1 over the bins")
    return p @ b


def encode_constants(skeletons, coefficients: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, max_len]`` float64 aligned with :func:`encode_tokens`: at each ``C`` the constant of
    its term (the k-th ``C`` is the k-th term of the sorted skeleton), nan elsewhere."""
    coef = torch.as_tensor(coefficients, dtype=torch.float64)
    out = torch.full((len(skeletons), max_len), math.nan, dtype=torch.float64)
    for i, s in enumerate(skeletons):
        where = [j + 1 for j, tok in enumerate(skeleton_tokens(s)) if tok == "C"]  # after BOS
        out[i, where] = coef[i, list(s)]
    return out


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
    """Sizes of :class:`ODETransformer` (the defaults train in about 20 s on one core);
    ``n_bins`` and ``constant_range`` define the two-hot grid of the constant head
    (:func:`constant_bins`)."""

    d_model: int = 64
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    d_mlp: int = 128
    max_len: int = 24
    n_bins: int = 41
    constant_range: float = 2.0

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "enc_layers", "dec_layers", "d_mlp", "max_len"):
            check_count(name, getattr(self, name))
        constant_bins(self.n_bins, self.constant_range)  # validates both
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
        self.constant = nn.Linear(d, config.n_bins)  # the two-hot head (created last)
        self.register_buffer("bins", constant_bins(config.n_bins, config.constant_range),
                             persistent=False)

    def encode(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Memory ``[B, P, d]`` of the samples ``t, y: [B, P]``."""
        if t.ndim != 2 or t.shape != y.shape:
            raise ValueError(f"t and y must be [B, P] of the same shape, got {tuple(t.shape)} "
                             f"and {tuple(y.shape)}")
        x = torch.cat([float_encode(t), float_encode(y)], dim=-1).to(self.out.weight.dtype)
        return self.encoder(self.point(x))

    def hidden(self, memory: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Final decoder states ``[B, T, d]`` of ``ids: [B, T]`` given ``memory: [B, P, d]``."""
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"ids has length {ids.shape[1]} > max_len={self.config.max_len}")
        mask = nn.Transformer.generate_square_subsequent_mask(ids.shape[1], dtype=memory.dtype)
        h = self.decoder(self.embed(ids), memory, tgt_mask=mask, tgt_is_causal=True)
        return self.ln(h)

    def decode(self, memory: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, V]`` of ``ids: [B, T]`` given ``memory: [B, P, d]``."""
        return self.out(self.hidden(memory, ids))

    def forward(self, t: torch.Tensor, y: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(t, y), ids)


@dataclass(frozen=True, eq=False)
class TrainedODEModel:
    """A pre-trained model with its training data, token loss history ``[(step, loss)]``, the
    CPU seconds of the training thread and the two-hot constant loss history."""

    model: ODETransformer
    data: ODEBatch
    history: tuple[tuple[int, float], ...]
    seconds: float
    noises: tuple[float, ...]
    constant_history: tuple[tuple[int, float], ...] = ()


def train_model(config: ODEModelConfig = ODEModelConfig(), *, n_train: int = 4000,
                steps: int = 600, batch_size: int = 64, lr: float = 2e-3,
                noises: tuple[float, ...] = (0.0, 0.01, 0.05),
                irregularity: tuple[float, float] = (0.0, 1.0), n_points: int = 32,
                t_max: float = 4.0, seed: int = 0, log_every: int = 50,
                constant_weight: float = 1.0) -> TrainedODEModel:
    """Pre-train an :class:`ODETransformer` on ``n_train`` generated ODEs (module docstring):
    loss = token cross-entropy + ``constant_weight`` × two-hot cross-entropy of the constants
    (0 trains the skeleton alone)."""
    check_count("n_train", n_train)
    if isinstance(constant_weight, bool) or not isinstance(constant_weight, (int, float)) \
            or not constant_weight >= 0:
        raise ValueError(f"constant_weight must be a number >= 0, got {constant_weight!r}")
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
    values = encode_constants(data.skeletons, data.coefficients, config.max_len)
    model = ODETransformer(config)
    bins = constant_bins(config.n_bins, config.constant_range)
    if float(data.coefficients.abs().max()) > config.constant_range:
        raise ValueError(f"config.constant_range={config.constant_range} does not cover the "
                         f"training constants (max |c| = {float(data.coefficients.abs().max()):g})")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    levels = torch.tensor(noises, dtype=torch.float64)
    history, constant_history = [], []
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
        h = model.hidden(model.encode(data.t[idx], y), batch[:, :-1])
        logits = model.out(h)
        token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                     batch[:, 1:].reshape(-1), ignore_index=PAD)
        at_c = batch[:, 1:] == _C  # the states that write a C predict its value
        target = two_hot_encode(values[idx][:, 1:][at_c], bins).to(h.dtype)
        constant_loss = -(target * F.log_softmax(model.constant(h[at_c]), -1)).sum(-1).mean()
        loss = token_loss + constant_weight * constant_loss if constant_weight else token_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            history.append((step, float(token_loss.detach())))
            constant_history.append((step, float(constant_loss.detach())))
    model.eval()
    return TrainedODEModel(model, data, tuple(history), time.thread_time() - started,
                           tuple(float(s) for s in noises), tuple(constant_history))


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


@torch.no_grad()
def predict_constants(model: ODETransformer, t: torch.Tensor, y: torch.Tensor, skeletons
                      ) -> torch.Tensor:
    """The network's two-hot constants of each skeleton for one trajectory (``t, y: [P]``): a
    teacher-forced pass over each skeleton's tokens, the constant head's softmax at the states
    that write ``C``, read out by :func:`two_hot_decode`. Returns ``[S, 7]`` float64 (zero
    outside each skeleton)."""
    if not isinstance(model, ODETransformer):
        raise TypeError(f"model must be an ODETransformer, got {type(model).__name__}")
    t = torch.as_tensor(t, dtype=torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    if t.ndim != 1:
        raise ValueError(f"t and y must be one trajectory [P], got {tuple(t.shape)}")
    sk = [check_skeleton(s, "skeletons") for s in skeletons]
    if not sk:
        raise ValueError("skeletons must not be empty")
    was_training = model.training
    model.eval()
    ids = encode_tokens(sk, model.config.max_len)
    memory = model.encode(t[None], y[None]).expand(len(sk), -1, -1)
    h = model.hidden(memory, ids[:, :-1])
    at_c = ids[:, 1:] == _C  # [S, T-1], |S_i| True per row, in term order
    values = two_hot_decode(F.softmax(model.constant(h[at_c]).double(), -1), model.bins)
    model.train(was_training)
    out = torch.zeros(len(sk), N_TERMS, dtype=torch.float64)
    rows = torch.arange(len(sk)).repeat_interleave(torch.tensor([len(s) for s in sk]))
    cols = torch.tensor([k for s in sk for k in s])
    out[rows, cols] = values  # boolean indexing is row-major: row i's Cs in term order
    return out
