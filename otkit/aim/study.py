"""The experiments of notebook 17: AIM and AIMv2 at laptop scale, and what their losses predict.

* :func:`pretrain_aim`: AIM (:class:`otkit.aim.model.PrefixCausalViT`, loss
  :func:`otkit.aim.objective.aim_loss`) on scikit-learn's 8×8 digits cut into 2×2 patches
  (N = 16 patches of 4 pixels; :func:`digits_patches`), AdamW with a linear warm-up and a
  cosine decay. At each checkpoint it records the held-out pre-training loss (fixed prefix
  draws) and two probes on the frozen trunk run bidirectionally (:mod:`otkit.aim.probe`): a
  linear probe on mean-pooled tokens and the attentive probe, both on the digit class.
  ``attention="causal"`` trains with K = 0 (the paper's causal ablation); ``normalize=False``
  regresses raw pixels (the targets ablation).
* :func:`pretrain_aimv2`: AIMv2 (:class:`otkit.aim.multimodal.AIMv2`) on the generated shapes
  with captions (:func:`otkit.aim.shapes.shapes_with_captions`, 16×16 in 4×4 patches), as
  ``"joint"`` (α = 0.4, text weight 1), ``"pixel"`` (text weight 0) or ``"caption"`` (α = 0);
  the encoder is probed on the shape class.
* Reading: :func:`loss_accuracy_spearman` (El-Nouby et al.'s claim that the pre-training loss
  predicts downstream accuracy: Spearman's ρ over checkpoints and sizes) and
  :func:`paired_verdict` (two settings over the same seeds: a lower / higher / tie verdict from
  :func:`otkit.stats.compare`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats as scipy_stats

from ..data import digits
from ..stats import compare
from ..validation import check_choice, check_count, check_positive
from .model import AIMConfig, PrefixCausalViT, patchify, sample_prefix, unpatchify
from .multimodal import PAPER_PIXEL_WEIGHT, AIMv2, AIMv2Config
from .objective import aim_loss
from .probe import attentive_probe, linear_probe
from .shapes import VOCAB, shapes_with_captions

__all__ = [
    "Split", "Checkpoint", "PretrainRun", "digits_patches", "shapes_patches", "pretrain_aim",
    "pretrain_aimv2", "heldout_loss", "probe_accuracies", "reconstruct", "checkpoint_rows",
    "loss_accuracy_spearman", "paired_verdict", "final", "AIMV2_VARIANTS", "PROBES",
]

PROBES = ("linear", "attentive")
#: AIMv2's ablation: (pixel weight α, text weight).
AIMV2_VARIANTS = {"joint": (PAPER_PIXEL_WEIGHT, 1.0), "pixel": (1.0, 0.0), "caption": (0.0, 1.0)}


@dataclass(frozen=True, eq=False)
class Split:
    """Patches ``[n, N, P]``, probe labels ``[n]`` and (for the shapes) captions ``[n, L]``."""

    patches: torch.Tensor
    labels: torch.Tensor
    captions: torch.Tensor | None = None


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """One checkpoint: its step, held-out pre-training loss, probe accuracies (held-out) and
    the model's weights (``state``, for reconstructions)."""

    step: int
    loss: float
    linear: float
    attentive: float
    state: dict = field(repr=False, default_factory=dict)


@dataclass(frozen=True, eq=False)
class PretrainRun:
    """A pre-training run: its setting, its checkpoints (the last is the final model) and the
    training losses (one per step)."""

    kind: str
    variant: str
    width: int
    seed: int
    config: AIMConfig | AIMv2Config
    checkpoints: tuple[Checkpoint, ...]
    train_losses: tuple[float, ...]
    seconds: float

    def model(self, step: int | None = None) -> PrefixCausalViT:
        """The trunk at checkpoint ``step`` (default: the last): the AIM model, or AIMv2's
        encoder."""
        ckpt = self.checkpoints[-1] if step is None else next(
            (c for c in self.checkpoints if c.step == step), None)
        if ckpt is None:
            raise ValueError(f"step={step} is not a checkpoint; have "
                             f"{[c.step for c in self.checkpoints]}")
        model = AIMv2(self.config) if self.kind == "aimv2" else PrefixCausalViT(self.config)
        model.load_state_dict(ckpt.state)
        model.eval()
        return model.encoder if self.kind == "aimv2" else model


def digits_patches(patch_size: int = 2, *, seed: int = 0) -> tuple[Split, Split]:
    """The 8×8 digits (:func:`otkit.data.digits`, pixels in [−1, 1]), a stratified 80/20 split
    drawn with ``seed``, as patches ``[n, (8/p)², p²]`` with the digit as label."""
    out = []
    for part in ("train", "test"):
        x, y = digits(split=part, seed=seed, return_labels=True)
        out.append(Split(patchify(x.view(-1, 1, 8, 8), patch_size), y))
    return out[0], out[1]


def shapes_patches(n_train: int = 1500, n_test: int = 500, *, size: int = 16,
                   patch_size: int = 4, seed: int = 0) -> tuple[Split, Split]:
    """Generated shapes with captions (train and test drawn with different seeds), as
    patches with their captions; the label is the shape class."""
    out = []
    for n, s in ((n_train, 2 * seed), (n_test, 2 * seed + 1)):
        d = shapes_with_captions(n, size=size, seed=s)
        out.append(Split(patchify(d.images, patch_size), d.shape, d.captions))
    return out[0], out[1]


def _check_split(name: str, split: object) -> Split:
    if not isinstance(split, Split):
        raise TypeError(f"{name} must be a Split, got {type(split).__name__}")
    return split


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def _checkpoint_steps(steps: int, checkpoints: int | Sequence[int]) -> list[int]:
    if isinstance(checkpoints, int) and not isinstance(checkpoints, bool):
        k = check_count("checkpoints", checkpoints)
        marks = sorted({round(steps * (i + 1) / k) for i in range(k)})
    else:
        marks = sorted({int(s) for s in checkpoints})
        if not marks or marks[0] < 0 or marks[-1] > steps:
            raise ValueError(f"checkpoints must be steps in [0, steps = {steps}], got {marks}")
    return marks


@torch.no_grad()
def heldout_loss(model: PrefixCausalViT, patches: torch.Tensor, *, attention: str = "prefix",
                 normalize: bool = True, seed: int = 1234) -> float:
    """AIM's loss on held-out patches with prefixes drawn from a fixed ``seed`` (the same
    draws for every checkpoint; K = 0 for ``attention="causal"``)."""
    check_choice("attention", attention, ("prefix", "causal"))
    n = patches.shape[1]
    gen = torch.Generator().manual_seed(seed)
    k = (sample_prefix(patches.shape[0], n, generator=gen) if attention == "prefix"
         else torch.zeros(patches.shape[0], dtype=torch.long))
    was = model.training
    model.eval()
    loss = float(aim_loss(model(patches, k), patches, k, normalize=normalize))
    model.train(was)
    return loss


@torch.no_grad()
def probe_accuracies(model: PrefixCausalViT, train: Split, test: Split, *,
                     probes: Sequence[str] = PROBES, seed: int = 0,
                     attentive_steps: int = 150) -> dict[str, float]:
    """Held-out accuracies of the probes on the frozen trunk's bidirectional tokens."""
    was = model.training
    model.eval()
    ftr, fte = model.features(train.patches), model.features(test.patches)
    model.train(was)
    out = {}
    for p in probes:
        check_choice("probes", p, PROBES)
        if p == "linear":
            out[p] = linear_probe(ftr, train.labels, fte, test.labels).accuracy
        else:
            with torch.enable_grad():
                out[p] = attentive_probe(ftr, train.labels, fte, test.labels, seed=seed,
                                         steps=attentive_steps).accuracy
    return out


def _train(model: torch.nn.Module, step_loss: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
           n: int, *, steps: int, batch_size: int, lr: float, weight_decay: float, seed: int,
           marks: list[int], on_mark: Callable[[int], Checkpoint]
           ) -> tuple[list[Checkpoint], list[float]]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                            betas=(0.9, 0.95))
    warmup = max(1, steps // 10)
    ckpts, losses = [], []
    if 0 in marks:
        ckpts.append(on_mark(0))
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup)
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        loss = step_loss(idx, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if step + 1 in marks:
            ckpts.append(on_mark(step + 1))
    return ckpts, losses


def _state(model: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _common(steps: int, batch_size: int, lr: float, seed: int) -> None:
    check_count("steps", steps)
    check_count("batch_size", batch_size)
    check_positive("lr", lr)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")


def pretrain_aim(train: Split, test: Split, *, width: int = 32, depth: int = 2, heads: int = 4,
                 attention: str = "prefix", normalize: bool = True, steps: int = 300,
                 batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 0.05,
                 checkpoints: int | Sequence[int] = 4, probes: Sequence[str] = PROBES,
                 probe_steps: int = 150, seed: int = 0) -> PretrainRun:
    """Pre-train AIM on ``train`` (patches of a square image grid; one channel) and probe it on
    ``test`` at each checkpoint (module docstring; ``probe_steps``: the attentive probe's
    AdamW steps)."""
    train, test = _check_split("train", train), _check_split("test", test)
    check_choice("attention", attention, ("prefix", "causal"))
    _common(steps, batch_size, lr, seed)
    n_patches, patch_dim = train.patches.shape[1:]
    p = math.isqrt(patch_dim)
    config = AIMConfig(image_size=math.isqrt(n_patches) * p, patch_size=p, width=width,
                       depth=depth, heads=heads)
    torch.manual_seed(seed)
    model = PrefixCausalViT(config)
    x = train.patches

    def step_loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        k = (sample_prefix(len(idx), n_patches, generator=gen) if attention == "prefix"
             else torch.zeros(len(idx), dtype=torch.long))
        return aim_loss(model(x[idx], k), x[idx], k, normalize=normalize)

    def on_mark(step: int) -> Checkpoint:
        acc = probe_accuracies(model, train, test, probes=probes, seed=seed,
                               attentive_steps=probe_steps)
        return Checkpoint(step, heldout_loss(model, test.patches, attention=attention,
                                             normalize=normalize),
                          acc.get("linear", math.nan), acc.get("attentive", math.nan),
                          _state(model))

    start = time.perf_counter()
    ckpts, losses = _train(model, step_loss, x.shape[0], steps=steps, batch_size=batch_size,
                           lr=lr, weight_decay=weight_decay, seed=seed,
                           marks=_checkpoint_steps(steps, checkpoints), on_mark=on_mark)
    variant = ("prefix" if attention == "prefix" else "causal") + ("" if normalize else "_raw")
    return PretrainRun("aim", variant, width, seed, config, tuple(ckpts), tuple(losses),
                       time.perf_counter() - start)


def pretrain_aimv2(train: Split, test: Split, *, variant: str = "joint", width: int = 32,
                   depth: int = 2, decoder_depth: int = 1, heads: int = 4, steps: int = 300,
                   batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 0.05,
                   probes: Sequence[str] = PROBES, seed: int = 0) -> PretrainRun:
    """Pre-train AIMv2 (``variant`` one of :data:`AIMV2_VARIANTS`) on captioned patches and
    probe its encoder on ``test`` at the end. The checkpoint's ``loss`` is the held-out
    α·L_img + L_text of the variant."""
    train, test = _check_split("train", train), _check_split("test", test)
    check_choice("variant", variant, tuple(AIMV2_VARIANTS))
    _common(steps, batch_size, lr, seed)
    if train.captions is None or test.captions is None:
        raise ValueError("train and test need captions for AIMv2")
    n_patches, patch_dim = train.patches.shape[1:]
    p = math.isqrt(patch_dim)
    pixel_w, text_w = AIMV2_VARIANTS[variant]
    config = AIMv2Config(AIMConfig(image_size=math.isqrt(n_patches) * p, patch_size=p,
                                   width=width, depth=depth, heads=heads, head_blocks=0),
                         vocab_size=len(VOCAB), caption_len=train.captions.shape[1],
                         decoder_depth=decoder_depth, pixel_weight=pixel_w, text_weight=text_w)
    torch.manual_seed(seed)
    model = AIMv2(config)
    x, c = train.patches, train.captions

    def step_loss(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        k = sample_prefix(len(idx), n_patches, generator=gen)
        return model.loss(x[idx], c[idx], k).total

    def on_mark(step: int) -> Checkpoint:
        model.eval()
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1234)
            k = sample_prefix(test.patches.shape[0], n_patches, generator=gen)
            loss = float(model.loss(test.patches, test.captions, k).total)
        model.train()
        acc = probe_accuracies(model.encoder, train, test, probes=probes, seed=seed)
        return Checkpoint(step, loss, acc.get("linear", math.nan), acc.get("attentive", math.nan),
                          _state(model))

    start = time.perf_counter()
    ckpts, losses = _train(model, step_loss, x.shape[0], steps=steps, batch_size=batch_size,
                           lr=lr, weight_decay=weight_decay, seed=seed, marks=[steps],
                           on_mark=on_mark)
    return PretrainRun("aimv2", variant, width, seed, config, tuple(ckpts), tuple(losses),
                       time.perf_counter() - start)


@torch.no_grad()
def reconstruct(model: PrefixCausalViT, patches: torch.Tensor, prefix: int, *,
                normalize: bool = True) -> torch.Tensor:
    """The images the model predicts with teacher forcing: the first ``prefix`` patches are
    given; every later patch k is the prediction from patches < k (row k − 1), mapped back to
    pixels with the true patch's mean and standard deviation when the model regresses
    normalized targets (as MAE's figures). ``[B, N, P]`` → images ``[B, 1, H, W]``."""
    c = model.config
    n = c.num_patches
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 0 <= prefix <= n - 1:
        raise ValueError(f"prefix must be an int in [0, {n - 1}], got {prefix!r}")
    was = model.training
    model.eval()
    pred = model(patches, torch.full((patches.shape[0],), prefix, dtype=torch.long))
    model.train(was)
    out = patches.clone()
    nxt = pred[:, :-1]
    if normalize:
        target = patches[:, 1:]
        mean = target.mean(-1, keepdim=True)
        std = (target.var(-1, keepdim=True, unbiased=True) + 1e-6).sqrt()
        nxt = nxt * std + mean
    start = max(prefix, 1)
    out[:, start:] = nxt[:, start - 1:]
    return unpatchify(out, c.patch_size, c.channels)


def checkpoint_rows(runs: Sequence[PretrainRun]) -> list[dict]:
    """One plain row per checkpoint: kind, variant, width, seed, step, loss, linear, attentive."""
    return [{"kind": r.kind, "variant": r.variant, "width": r.width, "seed": r.seed,
             "step": c.step, "loss": c.loss, "linear": c.linear, "attentive": c.attentive}
            for r in runs for c in r.checkpoints]


def loss_accuracy_spearman(runs: Sequence[PretrainRun], probe: str = "attentive",
                           *, min_step: int = 1) -> dict:
    """Spearman's ρ between the held-out pre-training loss and the probe's accuracy over every
    checkpoint (step ≥ ``min_step``) of ``runs`` (same objective, several sizes and seeds).
    The paper's claim is a strongly negative ρ (lower loss, better probe)."""
    check_choice("probe", probe, PROBES)
    pts = [(c.loss, getattr(c, probe)) for r in runs for c in r.checkpoints if c.step >= min_step]
    if len(pts) < 3:
        raise ValueError(f"runs give {len(pts)} checkpoints; Spearman's ρ needs at least 3")
    loss, acc = np.array(pts).T
    res = scipy_stats.spearmanr(loss, acc)
    return {"rho": float(res.statistic), "pvalue": float(res.pvalue), "n": len(pts)}


def final(runs: Sequence[PretrainRun], metric: str, *, step: int | None = None) -> list[float]:
    """The last checkpoint's ``metric`` (loss, linear or attentive) of each run, in order (or
    the checkpoint at ``step``, e.g. 0 for the random initialization)."""
    check_choice("metric", metric, ("loss",) + PROBES)
    out = []
    for r in runs:
        ckpt = r.checkpoints[-1] if step is None else next(
            (c for c in r.checkpoints if c.step == step), None)
        if ckpt is None:
            raise ValueError(f"step={step} is not a checkpoint of the run with seed {r.seed}")
        out.append(getattr(ckpt, metric))
    return out


def paired_verdict(a: Sequence[PretrainRun], b: Sequence[PretrainRun],
                   metric: str = "attentive", *, step_b: int | None = None) -> dict:
    """Setting ``a`` against ``b`` on the final ``metric``, paired by seed: the means, the
    interval of a − b over seeds and the verdict (``"higher"`` / ``"lower"`` / ``"tie"``,
    :func:`otkit.stats.compare`). ``step_b`` reads ``b`` at that checkpoint instead (with
    ``b = a`` and ``step_b = 0``: trained against the random initialization)."""
    sa, sb = [r.seed for r in a], [r.seed for r in b]
    if sa != sb:
        raise ValueError(f"a and b must be runs over the same seeds in the same order, got {sa} "
                         f"and {sb}")
    va, vb = final(a, metric), final(b, metric, step=step_b)
    cmp = compare(va, vb)
    return {"a": float(np.mean(va)), "b": float(np.mean(vb)),
            "difference": cmp.difference.estimate, "low": cmp.difference.low,
            "high": cmp.difference.high, "verdict": cmp.verdict, "wins_a": int(np.sum(
                np.array(va) > np.array(vb))), "n": len(va)}
