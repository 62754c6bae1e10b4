"""A gene-count-like data set with a sparse perturbation, for elastic maps (notebook 07).

MBO (Cuturi, Klein and Ablin 2023) motivates feature-sparse displacements by single-cell
perturbations, which move few genes; this generator plants such a perturbation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..validation import check_count, check_generator, check_nonnegative

__all__ = ["PerturbedExpression", "perturbed_expression"]


@dataclass(frozen=True)
class PerturbedExpression:
    """Log-counts of control and perturbed cells: ``control: [n, d]``, ``perturbed: [m, d]``,
    the perturbed genes' indices ``genes: [k]`` and their log2 fold changes ``fold: [k]``."""

    control: torch.Tensor
    perturbed: torch.Tensor
    genes: torch.Tensor
    fold: torch.Tensor


def perturbed_expression(
    n_control: int,
    n_perturbed: int,
    genes: int,
    perturbed_genes: int,
    *,
    fold: float = 2.0,
    depth: float = 2.0,
    dispersion: float = 0.5,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> PerturbedExpression:
    """A gene-count-like matrix with a sparse perturbation, in the spirit of single-cell data.

    Each gene has a mean expression μ_g drawn log-normally around ``depth``; each cell draws
    overdispersed counts (Poisson with a log-normal rate of mean μ_g and log-scale std
``dispersion``) and is returned as
    log1p(counts), the usual normalization. Perturbed cells have the means of
    ``perturbed_genes`` random genes multiplied by 2^{±fold} (signs at random): the rest of the
    genes, all but a few, are untouched, so a good map moves only those few coordinates.
    """
    n_control, n_perturbed = check_count("n_control", n_control), check_count("n_perturbed", n_perturbed)
    genes = check_count("genes", genes)
    k = check_count("perturbed_genes", perturbed_genes)
    if k > genes:
        raise ValueError(f"perturbed_genes must be <= genes = {genes}, got {k}")
    fold = check_nonnegative("fold", fold)
    depth, dispersion = check_nonnegative("depth", depth), check_nonnegative("dispersion", dispersion)
    gen = check_generator(generator, seed) or torch.Generator().manual_seed(0)
    mean = depth * torch.exp(torch.randn(genes, generator=gen, dtype=torch.float64))
    chosen = torch.randperm(genes, generator=gen)[:k].sort().values
    signs = torch.where(torch.rand(k, generator=gen) < 0.5, -1.0, 1.0).double()
    shifted = mean.clone()
    shifted[chosen] = mean[chosen] * 2.0 ** (fold * signs)

    def cells(n: int, mu: torch.Tensor) -> torch.Tensor:
        # log-normal rates of mean μ: overdispersed counts, as in single-cell data
        noise = torch.randn(n, genes, generator=gen, dtype=torch.float64)
        rate = mu * torch.exp(dispersion * noise - 0.5 * dispersion**2)
        return torch.log1p(torch.poisson(rate, generator=gen)).to(dtype)

    return PerturbedExpression(cells(n_control, mean), cells(n_perturbed, shifted), chosen,
                               (fold * signs).to(dtype))
