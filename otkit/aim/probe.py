"""Probes on frozen features: a linear probe on mean-pooled tokens and AIM's attentive probe.

El-Nouby et al. (2024), Section 4 ("attentive probe"): the trunk stays frozen and runs with
bidirectional attention; a light head pools its patch tokens ``h: [B, N, d]`` with one learned
query q ∈ ℝ^d attending to them (per head, no query projection, as their released
``AttentionPoolingClassifier``):

    h̄ = BN(h)  (batch norm without affine parameters, per channel over batch and tokens)
    z = Σ_heads softmax(q_hᵀ (h̄ W_k)_hᵀ / √d_h) (h̄ W_v)_h        (heads concatenated)
    logits = W z + b

:class:`AttentiveProbe` is that head; :func:`attentive_probe` trains it with AdamW on
precomputed features. :func:`linear_probe` is the baseline protocol: multinomial logistic
regression (scikit-learn, standardized inputs) on the mean over tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_count, check_nonnegative, check_positive

__all__ = ["ProbeResult", "AttentiveProbe", "attentive_probe", "linear_probe"]


@dataclass(frozen=True)
class ProbeResult:
    """A probe's accuracy on the held-out and on the training features."""

    accuracy: float
    train_accuracy: float


class AttentiveProbe(nn.Module):
    """AIM's attentive probe: ``[B, N, d]`` tokens → ``[B, classes]`` logits (module docstring)."""

    def __init__(self, width: int, classes: int, *, heads: int = 4, queries: int = 1):
        super().__init__()
        width, classes = check_count("width", width), check_count("classes", classes, minimum=2)
        self.heads, self.queries = check_count("heads", heads), check_count("queries", queries)
        if width % heads:
            raise ValueError(f"width={width} must be a multiple of heads={heads}")
        self.bn = nn.BatchNorm1d(width, affine=False, eps=1e-6)
        self.query = nn.Parameter(0.02 * torch.randn(queries, width))
        self.k = nn.Linear(width, width, bias=False)
        self.v = nn.Linear(width, width, bias=False)
        self.linear = nn.Linear(width, classes)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """The pooled representation z: ``[B, N, d]`` → ``[B, d]``."""
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3:
            raise ValueError("tokens must be [B, N, d], got "
                             f"{getattr(tokens, 'shape', type(tokens).__name__)}")
        b, n, d = tokens.shape
        if d != self.linear.in_features:
            raise ValueError(f"tokens have width {d}, the probe expects {self.linear.in_features}")
        x = self.bn(tokens.transpose(1, 2)).transpose(1, 2)
        dh = d // self.heads
        q = self.query.view(1, self.queries, self.heads, dh).transpose(1, 2).expand(b, -1, -1, -1)
        k = self.k(x).view(b, n, self.heads, dh).transpose(1, 2)
        v = self.v(x).view(b, n, self.heads, dh).transpose(1, 2)
        z = F.scaled_dot_product_attention(q, k, v)            # [B, heads, Q, dh]
        return z.transpose(1, 2).reshape(b, self.queries, d).mean(dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pool(tokens))


def _check_split(x: object, y: object, name: str, ndim: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(x, torch.Tensor) or x.ndim != ndim:
        raise ValueError(f"{name}_features must be a tensor with {ndim} dimensions, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    y = torch.as_tensor(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.is_floating_point:
        raise ValueError(f"{name}_labels must be [n] integers matching {name}_features' "
                         f"{x.shape[0]} rows, got {tuple(y.shape)} {y.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}_features is empty")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}_features must be finite")
    return x.float(), y.long()


def attentive_probe(train_features: torch.Tensor, train_labels: torch.Tensor,
                    test_features: torch.Tensor, test_labels: torch.Tensor, *,
                    heads: int = 4, steps: int = 150, lr: float = 1e-2,
                    weight_decay: float = 1e-2, batch_size: int = 128,
                    seed: int = 0) -> ProbeResult:
    """Train :class:`AttentiveProbe` on frozen tokens ``[n, N, d]`` (AdamW, cross-entropy,
    mini-batches) and report its accuracies."""
    xtr, ytr = _check_split(train_features, train_labels, "train", 3)
    xte, yte = _check_split(test_features, test_labels, "test", 3)
    steps, batch_size = check_count("steps", steps), check_count("batch_size", batch_size)
    check_positive("lr", lr)
    check_nonnegative("weight_decay", weight_decay)
    classes = int(max(ytr.max(), yte.max())) + 1
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    probe = AttentiveProbe(xtr.shape[2], max(classes, 2), heads=heads)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    n = xtr.shape[0]
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        loss = F.cross_entropy(probe(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    probe.eval()
    with torch.no_grad():
        acc = float((probe(xte).argmax(1) == yte).float().mean())
        train_acc = float((probe(xtr).argmax(1) == ytr).float().mean())
    return ProbeResult(acc, train_acc)


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor,
                 test_features: torch.Tensor, test_labels: torch.Tensor, *,
                 c: float = 1.0, max_iter: int = 300) -> ProbeResult:
    """Multinomial logistic regression (scikit-learn, inputs standardized on the training split,
    inverse regularization ``c``) on features ``[n, d]`` (or tokens ``[n, N, d]``, mean-pooled)."""
    from sklearn.linear_model import LogisticRegression

    def pooled(x: object) -> object:
        return x.mean(dim=1) if isinstance(x, torch.Tensor) and x.ndim == 3 else x

    xtr, ytr = _check_split(pooled(train_features), train_labels, "train", 2)
    xte, yte = _check_split(pooled(test_features), test_labels, "test", 2)
    check_positive("c", c)
    xtr, xte = xtr.double().numpy(), xte.double().numpy()
    mean, std = xtr.mean(0), xtr.std(0) + 1e-8
    model = LogisticRegression(C=c, max_iter=check_count("max_iter", max_iter))
    model.fit((xtr - mean) / std, ytr.numpy())
    acc = float(np.mean(model.predict((xte - mean) / std) == yte.numpy()))
    train_acc = float(np.mean(model.predict((xtr - mean) / std) == ytr.numpy()))
    return ProbeResult(acc, train_acc)
