"""A generated "shapes with captions" set: small grey images of one shape, and their captions.

Each image ``[1, S, S]`` (S = ``size``, default 16) holds one shape (square, circle, triangle
or cross) of one of two sizes, in one quadrant (top/bottom × left/right, with a random offset
inside it), at a random brightness on a dark background, plus Gaussian noise; pixels lie
roughly in [−1, 1]. Its caption names what is drawn, a fixed-length token sequence

    <bos> {small|large} {square|circle|triangle|cross} {top|bottom} {left|right}

over :data:`VOCAB`. The labels (shape, size, row, column) are returned for probes. Used by
AIMv2's study (:mod:`otkit.aim.multimodal`): the caption is the text the decoder predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validation import check_count, check_nonnegative

__all__ = ["VOCAB", "SHAPES", "ShapesCaptions", "shapes_with_captions", "caption_text"]

SHAPES = ("square", "circle", "triangle", "cross")
SIZES = ("small", "large")
ROWS = ("top", "bottom")
COLUMNS = ("left", "right")
#: The caption vocabulary; id 0 is ``<bos>``.
VOCAB = ("<bos>",) + SIZES + SHAPES + ROWS + COLUMNS


@dataclass(frozen=True, eq=False)
class ShapesCaptions:
    """``images: [n, 1, S, S]``, ``captions: [n, 5]`` token ids over :data:`VOCAB` (``<bos>``
    first), and the labels ``shape``, ``size``, ``row``, ``column``: ``[n]`` int64 each."""

    images: torch.Tensor
    captions: torch.Tensor
    shape: torch.Tensor
    size: torch.Tensor
    row: torch.Tensor
    column: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


def _draw(kind: int, radius: float, cy: float, cx: float, s: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(s, dtype=torch.float32) + 0.5,
                          torch.arange(s, dtype=torch.float32) + 0.5, indexing="ij")
    dy, dx = y - cy, x - cx
    if kind == 0:    # square
        return ((dy.abs() <= radius) & (dx.abs() <= radius)).float()
    if kind == 1:    # circle
        return (dy ** 2 + dx ** 2 <= (radius + 0.3) ** 2).float()
    if kind == 2:    # triangle, apex up
        return ((dy >= -radius) & (dy <= radius) & (dx.abs() <= (dy + radius) / 2)).float()
    half = max(radius / 3, 0.6)   # cross
    return (((dy.abs() <= half) & (dx.abs() <= radius))
            | ((dx.abs() <= half) & (dy.abs() <= radius))).float()


def shapes_with_captions(n: int, *, size: int = 16, noise: float = 0.1,
                         seed: int = 0) -> ShapesCaptions:
    """``n`` images and captions drawn with ``seed`` (module docstring). ``size`` ≥ 8."""
    n = check_count("n", n)
    size = check_count("size", size, minimum=8)
    noise = check_nonnegative("noise", noise)
    gen = torch.Generator().manual_seed(seed)
    labels = [torch.randint(0, k, (n,), generator=gen)
              for k in (len(SHAPES), len(SIZES), len(ROWS), len(COLUMNS))]
    shape, big, row, col = labels
    jitter = torch.rand(n, 2, generator=gen)
    bright = 0.6 + 0.4 * torch.rand(n, generator=gen)
    images = torch.empty(n, 1, size, size)
    quarter = size / 4
    for i in range(n):
        radius = (0.22 if big[i] else 0.13) * size
        cy = quarter * (1 + 2 * int(row[i])) + (jitter[i, 0] - 0.5) * quarter * 0.6
        cx = quarter * (1 + 2 * int(col[i])) + (jitter[i, 1] - 0.5) * quarter * 0.6
        images[i, 0] = -1 + 2 * bright[i] * _draw(int(shape[i]), float(radius), float(cy),
                                                  float(cx), size)
    images = images + noise * torch.randn(images.shape, generator=gen)
    offset = [1, 1 + len(SIZES), 1 + len(SIZES) + len(SHAPES),
              1 + len(SIZES) + len(SHAPES) + len(ROWS)]
    captions = torch.stack([torch.zeros(n, dtype=torch.long), big + offset[0],
                            shape + offset[1], row + offset[2], col + offset[3]], dim=1)
    return ShapesCaptions(images, captions, shape, big, row, col)


def caption_text(ids: torch.Tensor) -> str:
    """Token ids ``[L]`` → the caption's words (``<bos>`` dropped)."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != 0)
