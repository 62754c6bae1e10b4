"""Width and depth parameterizations: SP, μP, depth-μP (α = ½) and CompleteP (α = 1).

A parameterization says how the initialization, the forward multipliers and the optimizer's
per-parameter hyper-parameters change when a model is made wider or deeper than a *base* model
whose hyper-parameters (η, ε, λ, σ) were tuned, so that the tuned values transfer. With

    m_N = width / base_width,        m_L = depth / base_depth

(width: d_model for the transformer, the hidden width for an MLP; depth: the number of
residual blocks L) the rules implemented here are those of Table 1 of Dey, Zhang, Noci, Li,
Bordelon, Bergsma, Pehlevan, Hanin and Hestness (2025), "Don't be lazy: CompleteP enables
compute-efficient deep transformers" (arXiv:2505.01618) and of its public baseline
(EleutherAI/nanoGPT-mup, branch ``completep``), for AdamW, with α the depth exponent
(μP: Yang et al. 2022, "Tensor Programs V"; depth-μP α = ½: Yang et al. 2023, "Tensor Programs
VI"; Bordelon et al. 2023):

=================================  ========  ============  ===========================
quantity                           SP        μP            depth-μP (α=½), CompleteP (α=1)
=================================  ========  ============  ===========================
residual branch  h ← h + r·F(h)    r = 1     r = 1         r = m_L^(−α)
hidden weights: init std           σ         σ·m_N^(−½)    σ·m_N^(−½)
hidden weights: AdamW lr           η         η·m_N^(−1)    η·m_N^(−1)·m_L^(α−1)
hidden weights: AdamW ε            ε         ε·m_N^(−1)    ε·m_N^(−1)·m_L^(−α)
hidden weights: weight decay       λ         λ·m_N         λ·m_N
in-block biases and norms: lr, ε   η, ε      η, ε          η·m_L^(α−1), ε·m_L^(−α)
embeddings, final norm: lr, ε      η, ε      η, ε          η, ε
unembedding: init std, lr, ε       σ, η, ε   σ, η, ε       σ, η, ε
output logits × (multiplier)       1         1/m_N         1/m_N
=================================  ========  ============  ===========================

"Hidden weights" are the matrices whose fan-in grows with the width (W_qkv, W_out, W_fc,
W_proj in a transformer block; the hidden-to-hidden layers of an MLP). Weight decay is
AdamW's decoupled one, applied as θ ← θ − lr·λ·θ, so λ·m_N keeps lr·λ independent of the
width (the paper's rule).

Sources of the forms: the searchable text of the paper gave its abstract, its residual form
h^(l+1) = h^l + L^(−α) F_l(h^l) with α = 1 for CompleteP and ½ for depth-μP, but not Table 1
itself; the hidden-weight rows (r = m_L^(−α), lr η·m_N^(−1)·m_L^(α−1), ε·m_N^(−1)·m_L^(−α),
init σ·m_N^(−½), logits × 1/m_N, weight decay λ·m_N) are those of the public baseline as
quoted in otkit's issue 27 and as they read in public implementations of it (``depth_lr_scaling
= depth_multiplier ** (alpha − 1)``, ``eps *= 1/width_multiplier · depth_multiplier ** −alpha``,
``residual_scaling = 1 / depth_multiplier ** alpha``). Two readings are this module's own: that
implementation scales the global ε (every group); here only hidden weights get the width factor
and in-block vectors the depth factor m_L^(−α), embeddings and unembedding keep ε; and in-block
biases and norms take the depth factor of the hidden learning rate, m_L^(α−1).

Forms used and choices made here:

* σ of each weight is the one the base model's own initialization gives it: GPT-2's
  N(0, 0.02²) with the residual projections (W_out, W_proj) at 0.02/√(2L). SP keeps that rule
  at every size (so its projections shrink as 1/√L); μP keeps SP's depth rule and scales only
  the width; depth-μP and CompleteP freeze the projections' std at its base-depth value
  0.02/√(2·base_depth) and let the branch multiplier r = m_L^(−α) do the depth scaling. At the
  base width and depth (m_N = m_L = 1) every rule above is the identity, so every
  parameterization *is* SP there (tested: same weights, same training losses).
* Attention keeps the scale the model's config asks for (``attention_scale``, default
  1/√d_head). μP asks for 1/d_head; the two differ by a constant when the head dimension is
  held fixed and the number of heads grows with the width, which is how
  :mod:`otkit.completep` scales the model (so that the rule is moot there). QK-norm
  (``qk_norm=True`` in the config) adds per-head LayerNorms whose gains and biases go with
  the in-block vectors.
* The transformer's multipliers (r, 1/m_N) are set in its config
  (:meth:`~otkit.nn.transformer.Transformer.set_multipliers`, multiplying the base config's own
  ``residual_multiplier``/``logit_multiplier``), so
  :func:`otkit.nn.transformer.residual_stream` sees the scaled residual stream. The velocity
  MLP's 1/m_N is a permanent forward hook on its last ``Linear``.
* The velocity MLP (:class:`otkit.nn.velocity.VelocityMLP`) has no residual branches: only the
  width rules apply to it (its depth does not enter); its σ are 1/√fan_in of the base model
  (PyTorch's Linear scale, drawn Gaussian).

Batch size and training duration (:func:`sde_scaling`). Mlodozeniec, Ablin, Béthune, …,
Cuturi, Klein et al. (2025), "Completed hyperparameter transfer across modules, width, depth,
batch and duration" (arXiv:2512.22382) add SDE-based rules for these two axes; the searchable
text of that paper (its abstract and third-party summaries) names them but does not give their
formulas, so the forms below are this module's reading, not the paper's text. With
κ_B = B/B₀ (sequences per step) and κ_D = D/D₀ (sequences seen in the whole run, so the
number of steps S = D/B scales by κ_D/κ_B):

    η ← η·√(κ_B/κ_D),   ε ← ε·√(κ_D/κ_B),   λ ← λ·√(κ_B/κ_D),   1 − βᵢ ← κ_B·(1 − βᵢ)

* Batch (κ_D = 1) is the square-root SDE scaling rule for Adam of Malladi, Lyu, Panigrahi and
  Arora (2022), "On the SDEs and scaling rules for adaptive gradient algorithms" (NeurIPS):
  η·√κ, 1 − βᵢ by κ, ε/√κ; it keeps the SDE time S·η² and the moment EMAs' horizon in
  SDE time. The weight decay factor keeps AdamW's total decay S·η·λ (decoupled decay
  θ ← θ(1 − ηλ) per step).
* Duration (κ_B = 1) is the same SDE-time argument applied to the number of steps: S·η² fixed
  gives η ∝ κ_D^(−½) (ε ∝ 1/η as in the batch rule), S·η·λ fixed gives λ ∝ κ_D^(−½) (the AdamW
  timescale 1/(ηλ) a fixed fraction of the run, as Wang & Aitchison 2024 argue), and the
  β's keep their horizon in sequences (unchanged at a fixed batch). The combined form,
  η ∝ √(B/D) with β₂'s horizon fixed in tokens, is also that of public "close to Complete(d)P"
  recipes (e.g. the Marin project's AdamH recipe: lr ∝ √(r/r₀), r = B/D, ε ∝ √(r₀/r)).
  Whether η* actually moves as D^(−½) on a given problem is what :mod:`otkit.completep`
  measures.

Every entry point returns a :class:`Parameterized` with the optimizer groups (``lr``, ``eps``,
``weight_decay`` per group, for :class:`torch.optim.AdamW` or :func:`otkit.nn.trainer.train`)
and reinitializes the model in place from ``generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..validation import check_choice, check_count, check_nonnegative, check_positive
from .transformer import Transformer
from .velocity import VelocityMLP

__all__ = [
    "SCHEMES", "ALPHA", "Multipliers", "Parameterized", "multipliers", "parameterize_transformer",
    "parameterize_mlp", "SDEScaling", "sde_scaling",
]

#: The parameterizations, in the order of the table above.
SCHEMES = ("sp", "mup", "depth_mup", "completep")
#: Depth exponent α of each scheme (the residual branch multiplier is m_L^(−α)); SP and μP have
#: no depth rule.
ALPHA = {"sp": 0.0, "mup": 0.0, "depth_mup": 0.5, "completep": 1.0}
_MARK = "_otkit_parameterization"


@dataclass(frozen=True)
class Multipliers:
    """The factors of the module docstring's table at one width and depth (all 1 at the base).

    Attributes:
        scheme: one of :data:`SCHEMES`.
        width_ratio, depth_ratio: m_N and m_L.
        alpha: the depth exponent α (0 for SP and μP).
        residual: r, the residual-branch multiplier.
        output: the logits multiplier.
        hidden_init: factor on the hidden weights' init std.
        hidden_lr, hidden_eps, hidden_weight_decay: factors on η, ε, λ for hidden weights.
        vector_lr, vector_eps: factors on η, ε for the biases and norms inside blocks.
    """

    scheme: str
    width_ratio: float
    depth_ratio: float
    alpha: float
    residual: float
    output: float
    hidden_init: float
    hidden_lr: float
    hidden_eps: float
    hidden_weight_decay: float
    vector_lr: float
    vector_eps: float


def multipliers(
    scheme: str,
    *,
    width: int,
    base_width: int,
    depth: int = 1,
    base_depth: int = 1,
) -> Multipliers:
    """The factors of ``scheme`` at ``width``/``depth`` for a base model of ``base_width``/
    ``base_depth`` (the table of the module docstring).

    Raises:
        ValueError naming ``scheme`` (unknown) or the size that is not a positive integer.
    """
    check_choice("scheme", scheme, SCHEMES)
    m_n = check_count("width", width) / check_count("base_width", base_width)
    m_l = check_count("depth", depth) / check_count("base_depth", base_depth)
    if scheme == "sp":
        return Multipliers(scheme, m_n, m_l, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    a = ALPHA[scheme]
    return Multipliers(
        scheme, m_n, m_l, a,
        residual=m_l ** -a,
        output=1.0 / m_n,
        hidden_init=m_n ** -0.5,
        hidden_lr=m_l ** (a - 1.0) / m_n if a else 1.0 / m_n,
        hidden_eps=m_l ** -a / m_n,
        hidden_weight_decay=m_n,
        vector_lr=m_l ** (a - 1.0) if a else 1.0,
        vector_eps=m_l ** -a,
    )


@dataclass(frozen=True)
class Parameterized:
    """A model set up by :func:`parameterize_transformer` or :func:`parameterize_mlp`.

    Attributes:
        multipliers: the :class:`Multipliers` used.
        groups: optimizer parameter groups ``[{"name", "params", "lr", "eps",
            "weight_decay"}, ...]`` (every trainable parameter exactly once).
        init_std: ``{parameter name: std it was drawn with}`` (biases and norms are not listed:
            zeros and ones).
    """

    multipliers: Multipliers
    groups: list[dict]
    init_std: dict[str, float]

    def group(self, name: str) -> dict:
        """The group called ``name`` (ValueError naming ``name`` if there is none)."""
        for g in self.groups:
            if g["name"] == name:
                return g
        raise ValueError(f"name {name!r} is not a group; groups are {[g['name'] for g in self.groups]}")


class _ScaleOutput:
    """A forward hook multiplying a module's tensor output by a constant (picklable)."""

    def __init__(self, factor: float) -> None:
        self.factor = float(factor)

    def __call__(self, module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output * self.factor


def _check_hparams(lr: float, eps: float, weight_decay: float, std: float | None) -> None:
    check_positive("lr", lr)
    check_positive("eps", eps)
    check_nonnegative("weight_decay", weight_decay)
    if std is not None:
        check_positive("std", std)


def _mark(model: nn.Module) -> None:
    if getattr(model, _MARK, False):
        raise ValueError("model is already parameterized (its multipliers are installed): "
                         "build a fresh model")
    setattr(model, _MARK, True)


def _group(name: str, params: list, lr: float, eps: float, wd: float) -> dict:
    return {"name": name, "params": params, "lr": float(lr), "eps": float(eps),
            "weight_decay": float(wd)}


@torch.no_grad()
def parameterize_transformer(
    model: Transformer,
    scheme: str,
    *,
    base_width: int,
    base_depth: int,
    lr: float,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    std: float = 0.02,
    generator: torch.Generator | None = None,
) -> Parameterized:
    """Reinitialize a :class:`~otkit.nn.transformer.Transformer` for ``scheme``, install its
    multipliers and return its AdamW groups.

    Width is ``config.d_model``, depth ``config.n_layers``. Groups: ``"embeddings"`` (token
    and position tables), ``"hidden"`` (W_qkv, W_out, W_fc, W_proj of every block),
    ``"block_vectors"`` (their biases, ln₁, ln₂ and QK-norm's LayerNorms), ``"final_norm"`` (ln_f) and
    ``"unembedding"`` (U). The hyper-parameters ``lr`` (η), ``eps`` (ε), ``weight_decay`` (λ)
    and ``std`` (σ) are the base model's.

    Raises:
        ValueError naming ``model`` for a tied unembedding under a scheme other than SP (μP
        treats U apart from E: build the model with ``tied=False``) or a model already
        parameterized; ``scheme``, ``base_width``, ``base_depth``, ``lr``, ``eps``,
        ``weight_decay`` or ``std`` for bad values.
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a Transformer, got {type(model).__name__}")
    _check_hparams(lr, eps, weight_decay, std)
    cfg = model.config
    m = multipliers(scheme, width=cfg.d_model, base_width=base_width, depth=cfg.n_layers,
                    base_depth=base_depth)
    if cfg.tied and scheme != "sp":
        raise ValueError(f"model has a tied unembedding; scheme={scheme!r} scales the "
                         "unembedding apart from the embedding: build it with tied=False")
    _mark(model)
    # residual projections: SP/μP use the model's own depth; depth schemes freeze base depth
    proj_depth = base_depth if m.alpha else cfg.n_layers
    proj_std = std / math.sqrt(2 * proj_depth)
    init_std: dict[str, float] = {}
    groups: dict[str, list] = {k: [] for k in ("embeddings", "hidden", "block_vectors",
                                               "final_norm", "unembedding")}
    for name, p in model.named_parameters():
        if name.startswith("embedding."):
            init_std[name] = std
            p.normal_(0.0, std, generator=generator)
            groups["embeddings"].append(p)
        elif name.startswith("unembed."):
            init_std[name] = std
            p.normal_(0.0, std, generator=generator)
            groups["unembedding"].append(p)
        elif name.startswith("ln_f."):
            p.fill_(1.0 if name.endswith("weight") else 0.0)
            groups["final_norm"].append(p)
        elif (name.endswith(".weight") and (".attn." in name or ".mlp." in name)
              and "_norm." not in name):  # QK-norm gains are vectors
            s = (proj_std if (".attn.out." in name or ".mlp.proj." in name) else std)
            s *= m.hidden_init
            init_std[name] = s
            p.normal_(0.0, s, generator=generator)
            groups["hidden"].append(p)
        else:  # in-block biases and LayerNorms (QK-norm's too)
            is_norm_weight = (name.split(".")[-2] in ("ln1", "ln2", "q_norm", "k_norm")
                              and name.endswith("weight"))
            p.fill_(1.0 if is_norm_weight else 0.0)
            groups["block_vectors"].append(p)
    if m.residual != 1.0 or m.output != 1.0:  # on top of the base config's own multipliers
        model.set_multipliers(residual=cfg.residual_multiplier * m.residual,
                              logits=cfg.logit_multiplier * m.output)
    wd = weight_decay
    out = [
        _group("embeddings", groups["embeddings"], lr, eps, wd),
        _group("hidden", groups["hidden"], lr * m.hidden_lr, eps * m.hidden_eps,
               wd * m.hidden_weight_decay),
        _group("block_vectors", groups["block_vectors"], lr * m.vector_lr, eps * m.vector_eps, wd),
        _group("final_norm", groups["final_norm"], lr, eps, wd),
    ]
    if groups["unembedding"]:
        out.append(_group("unembedding", groups["unembedding"], lr, eps, wd))
    return Parameterized(m, out, init_std)


@torch.no_grad()
def parameterize_mlp(
    model: VelocityMLP,
    scheme: str,
    *,
    base_width: int,
    lr: float,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
) -> Parameterized:
    """Reinitialize a :class:`~otkit.nn.velocity.VelocityMLP` for ``scheme`` (width rules only:
    an MLP has no residual branches, so depth-μP and CompleteP act as μP on it).

    Layers: the input layer (fan-in d + time features, fixed) gets σ = 1/√fan_in, η, ε;
    hidden layers σ = m_N^(−½)/√base_width, η·m_N^(−1), ε·m_N^(−1), λ·m_N; the output layer
    σ = 1/√base_width (SP: 1/√width), η, ε, and the output multiplier 1/m_N. Biases start at 0
    go with their layer's group, except the hidden layers' (vector-like: η, ε, λ). Groups:
    ``"input"``, ``"hidden"`` and ``"hidden_biases"`` (absent with one hidden layer),
    ``"output"``.

    Raises:
        ValueError naming ``model`` (already parameterized) or the bad argument.
    """
    if not isinstance(model, VelocityMLP):
        raise TypeError(f"model must be a VelocityMLP, got {type(model).__name__}")
    _check_hparams(lr, eps, weight_decay, None)
    linears = [(f"net.{i}", mod) for i, mod in enumerate(model.net) if isinstance(mod, nn.Linear)]
    width = linears[0][1].out_features
    m = multipliers(scheme, width=width, base_width=base_width)
    _mark(model)
    init_std: dict[str, float] = {}
    hidden_weights: list = []
    hidden_biases: list = []
    out_groups = []
    for k, (name, layer) in enumerate(linears):
        if k == 0:
            s = 1.0 / math.sqrt(layer.in_features)
        elif k == len(linears) - 1:
            s = 1.0 / math.sqrt(layer.in_features if scheme == "sp" else base_width)
        else:
            s = m.hidden_init / math.sqrt(base_width)
        init_std[f"{name}.weight"] = s
        layer.weight.normal_(0.0, s, generator=generator)
        layer.bias.zero_()
        params = [layer.weight, layer.bias]
        if k == 0:
            out_groups.append(_group("input", params, lr, eps, weight_decay))
        elif k == len(linears) - 1:
            out_groups.append(_group("output", params, lr, eps, weight_decay))
        else:
            hidden_weights.append(layer.weight)
            hidden_biases.append(layer.bias)
    if hidden_weights:
        out_groups[1:1] = [
            _group("hidden", hidden_weights, lr * m.hidden_lr, eps * m.hidden_eps,
                   weight_decay * m.hidden_weight_decay),
            _group("hidden_biases", hidden_biases, lr, eps, weight_decay),
        ]
    if m.output != 1.0:
        linears[-1][1].register_forward_hook(_ScaleOutput(m.output))
    return Parameterized(m, out_groups, init_std)


@dataclass(frozen=True)
class SDEScaling:
    """The batch-size and duration factors of :func:`sde_scaling` (all 1 at the base).

    Attributes:
        batch_ratio: κ_B = B/B₀. duration_ratio: κ_D = D/D₀ (sequences over the whole run).
        steps_ratio: S/S₀ = κ_D/κ_B.
        lr, eps, weight_decay: factors on every group's η, ε, λ.
        beta_ratio: factor κ_B on 1 − β₁ and 1 − β₂.
    """

    batch_ratio: float
    duration_ratio: float
    steps_ratio: float
    lr: float
    eps: float
    weight_decay: float
    beta_ratio: float

    def betas(self, betas: tuple[float, float]) -> tuple[float, float]:
        """(β₁, β₂) with 1 − βᵢ scaled by κ_B. ValueError naming ``betas`` when a scaled β
        would leave [0, 1) (κ_B·(1 − βᵢ) ≥ 1: the batch grew too much for that β)."""
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        out = []
        for b in betas:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
                raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
            one_minus = self.beta_ratio * (1.0 - b)
            if one_minus > 1.0:
                raise ValueError(f"betas={betas!r} scaled for batch ratio {self.batch_ratio:g} "
                                 f"gives 1 - beta = {one_minus:g} > 1: use a smaller batch ratio "
                                 "or betas closer to 1")
            out.append(1.0 - one_minus)
        return out[0], out[1]

    def apply(self, groups: list[dict], betas: tuple[float, float]) -> list[dict]:
        """Copies of optimizer ``groups`` with ``lr``, ``eps``, ``weight_decay`` scaled and
        ``betas`` set to :meth:`betas` of the base ``betas`` (missing keys: torch's AdamW
        defaults, lr excepted, which each group must have)."""
        scaled = self.betas(betas)
        out = []
        for g in groups:
            if "lr" not in g:
                raise ValueError("groups must give every group its 'lr'")
            h = dict(g)
            h["lr"] = g["lr"] * self.lr
            h["eps"] = g.get("eps", 1e-8) * self.eps
            h["weight_decay"] = g.get("weight_decay", 1e-2) * self.weight_decay
            h["betas"] = scaled
            out.append(h)
        return out


def sde_scaling(*, batch_size: int, base_batch_size: int, samples: int | None = None,
                base_samples: int | None = None) -> SDEScaling:
    """The batch-size and duration rule of the module docstring (this module's reading of
    Mlodozeniec et al. 2025, built on Malladi et al. 2022's square-root SDE rule).

    ``samples``/``base_samples``: sequences seen over the whole run (D, D₀); leave both out to
    keep the duration (κ_D = 1: the steps shrink as the batch grows).

    Raises:
        ValueError naming the size that is not a positive integer, or ``samples`` when only one
        of the two is given.
    """
    k_b = check_count("batch_size", batch_size) / check_count("base_batch_size", base_batch_size)
    if (samples is None) != (base_samples is None):
        raise ValueError("samples and base_samples go together: give both or neither")
    k_d = 1.0 if samples is None else (check_count("samples", samples)
                                       / check_count("base_samples", base_samples))
    r = math.sqrt(k_b / k_d)
    return SDEScaling(k_b, k_d, k_d / k_b, lr=r, eps=1.0 / r, weight_decay=r, beta_ratio=k_b)
