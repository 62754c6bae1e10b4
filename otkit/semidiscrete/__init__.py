"""Semidiscrete optimal transport, the coupling of SD-FM.

Mousavi-Hosseini, Zhang, Klein and Cuturi (2025), "Flow Matching with Semidiscrete Couplings":
a sampled source, N target points and a dual vector g ∈ R^N trained by SGD on the semi-dual;
the assignment of a point is a maximum inner product search over the targets. SD-FM's pairs
are :class:`otkit.flows.SemidiscreteCoupling`.
"""

from .solver import (
    SemidiscreteResult,
    assign,
    chi2_error,
    semidiscrete,
    semidiscrete_gradient,
    semidiscrete_loss,
)

__all__ = [
    "semidiscrete",
    "SemidiscreteResult",
    "semidiscrete_loss",
    "semidiscrete_gradient",
    "assign",
    "chi2_error",
]
