r"""Closed forms of (entropic) optimal transport between Gaussian measures.

Conventions (otkit's, everywhere in this module):

* the ground cost is the *half* squared Euclidean distance
  :math:`c(x, y) = \tfrac12\|x - y\|^2`;
* entropic OT is
  :math:`\mathrm{OT}_\varepsilon(\mu, \nu) = \min_{\pi \in \Pi(\mu, \nu)}
  \int c \, d\pi + \varepsilon\, \mathrm{KL}(\pi \,|\, \mu \otimes \nu)`.

Here :math:`\mu = \mathcal N(m_0, \Sigma_0)` and :math:`\nu = \mathcal N(m_1, \Sigma_1)` on
:math:`\mathbb R^d`. Means are tensors of shape ``[d]``, covariances ``[d, d]``. All functions
take float32 or float64 tensors on any device and return results of the same dtype and
device; nothing is moved to the CPU. Input validation (finite entries, symmetry, positive
semi-definiteness) reads a few scalars back from the device: it is done once per call on
``d x d`` matrices, never on data clouds.

Matrix square roots use ``torch.linalg.eigh`` (``S = U diag(λ) Uᵀ``,
``S^½ = U diag(√λ) Uᵀ``), clamping the tiny negative eigenvalues that round-off produces.

Unregularized OT (Gelbrich 1990; Dowson and Landau 1982; Takatsu 2011)
----------------------------------------------------------------------
The squared 2-Wasserstein distance for the cost ``‖x − y‖²`` (no ½) is

.. math::
    W_2^2(\mu, \nu) = \|m_0 - m_1\|^2 + \operatorname{tr}\Sigma_0 + \operatorname{tr}\Sigma_1
        - 2 \operatorname{tr}\big(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2}\big)^{1/2},

so the OT cost with otkit's ``½‖x − y‖²`` is ``½ W_2²``. The Monge map is
:math:`T(x) = m_1 + A(x - m_0)` with the symmetric positive definite
:math:`A = \Sigma_0^{-1/2}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}\Sigma_0^{-1/2}`.

Entropic OT
-----------
References: H. Janati, B. Muzellec, G. Peyré, M. Cuturi, "Entropic optimal transport between
unbalanced Gaussian measures has a closed form", NeurIPS 2020, Theorem 1 (balanced case);
A. Mallasto, A. Gerolin, H. Q. Minh, "Entropy-regularized 2-Wasserstein distance between
Gaussian measures", Information Geometry 2022 (arXiv 2006.03416); E. del Barrio, J.-M. Loubes,
"The statistical effect of entropic regularization in optimal transportation", arXiv 2006.05199.

The optimal entropic coupling is Gaussian, :math:`\pi = \mathcal N\big((m_0, m_1),
\begin{bmatrix}\Sigma_0 & C\\ C^\top & \Sigma_1\end{bmatrix}\big)`. Janati et al. state the
result for the cost ``‖x − y‖²`` with regularization ``2σ² KL(π | μ⊗ν)``. Since
``½‖x − y‖² + ε KL = ½ (‖x − y‖² + 2ε KL)``, otkit's problem is one half of theirs with
``σ² = ε``: same optimal coupling, half the value. We re-derived it rather than trusting the
conversion. Among Gaussian couplings the objective is, up to constants,
``−tr C − (ε/2) log det S`` with the Schur complement ``S = Σ1 − Cᵀ Σ0⁻¹ C``; its stationarity
condition is ``Σ0⁻¹ C S⁻¹ = I/ε``, i.e. the off-diagonal block of the joint *precision* matrix
equals ``−I/ε`` (the only x–y interaction in the log-density
``(f(x) + g(y) − ½‖x − y‖²)/ε`` is ``+⟨x, y⟩/ε``). Solving it gives, with
:math:`M = \Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2} = U \operatorname{diag}(m_i) U^\top` and
:math:`D_\varepsilon = (4M + \varepsilon^2 I)^{1/2}`,

.. math::
    C = \tfrac12\big(\Sigma_0^{1/2} D_\varepsilon \Sigma_0^{-1/2} - \varepsilon I\big)
      = \Sigma_0^{1/2} G\, \Sigma_0^{1/2} \Sigma_1, \qquad
    G = 2 (D_\varepsilon + \varepsilon I)^{-1},

(Janati et al.'s ``C_σ`` with ``σ² = ε``). The second form uses
``D_ε − εI = 4M (D_ε + εI)⁻¹``; it needs no inverse of Σ0 and does not cancel
catastrophically at large ε, so it is the one computed. Then, with
``k_i = 2 m_i / (√(4 m_i + ε²) + ε)`` the eigenvalues of ``K = (D_ε − εI)/2`` (``tr C = tr K``),

.. math::
    \mathbb E_\pi[\tfrac12\|X - Y\|^2] &= \tfrac12\big(\|m_0 - m_1\|^2 + \operatorname{tr}\Sigma_0
        + \operatorname{tr}\Sigma_1 - 2\textstyle\sum_i k_i\big),\\
    \mathrm{KL}(\pi \,|\, \mu\otimes\nu) &= \tfrac12\big(\log\det\Sigma_0 + \log\det\Sigma_1
        - \log\det\Sigma_\pi\big)
        = \tfrac12 \textstyle\sum_i \log\frac{\sqrt{4 m_i + \varepsilon^2} + \varepsilon}{2\varepsilon},

(the mutual information of the coupling; the last form stays finite for singular
covariances). Doubling ``transport_cost + ε kl`` recovers Janati et al.'s value
``‖m0 − m1‖² + tr Σ0 + tr Σ1 − tr D_σ + dσ²(1 − log 2σ²) + σ² log det(D_σ + σ² I)`` at
``σ² = ε``. The entropic (barycentric) map is
``E_π[Y | X = x] = m1 + Cᵀ Σ0⁻¹ (x − m0)``, whose matrix ``Cᵀ Σ0⁻¹ = Σ0^{-½} K Σ0^{-½}`` is
symmetric positive semi-definite. As ``ε → 0``, ``C → Σ0 A`` (the Monge coupling) and the
transport cost tends to ``½ W_2²``; as ``ε → ∞``, ``C ≈ Σ0 Σ1 / ε → 0`` (independent coupling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor

__all__ = [
    "AffineMap",
    "EntropicGaussianOT",
    "entropic_ot",
    "inv_sqrtm_psd",
    "monge_map",
    "random_spd",
    "sample_gaussian",
    "sqrtm_psd",
    "w2_squared",
]


# --------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------


def _rtol(dtype: torch.dtype) -> float:
    """Relative tolerance for symmetry / PSD checks: √(machine epsilon) of ``dtype``."""
    return math.sqrt(torch.finfo(dtype).eps)


def _check_tensor(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64), got {x.dtype}; "
            f"convert it with {name}.to(torch.float32)"
        )
    return x


def _check_finite(name: str, x: Tensor) -> None:
    if x.numel() > 0 and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf entries")


def _check_square(name: str, s: Tensor) -> int:
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"{name} must be a square matrix of shape [d, d], got shape {tuple(s.shape)}")
    if s.shape[0] == 0:
        raise ValueError(f"{name} must have dimension d >= 1, got shape {tuple(s.shape)}")
    return s.shape[0]


def _check_symmetric(name: str, s: Tensor) -> Tensor:
    """Check approximate symmetry and return the exactly symmetrized matrix."""
    scale = s.abs().amax().clamp_min(torch.finfo(s.dtype).tiny)
    asym = (s - s.mT).abs().amax()
    if bool(asym > _rtol(s.dtype) * scale):
        raise ValueError(
            f"{name} must be symmetric: max |{name} - {name}ᵀ| = {float(asym):.3g} exceeds "
            f"{_rtol(s.dtype):.1e} x max |{name}|; symmetrize it with ({name} + {name}.T) / 2"
        )
    return 0.5 * (s + s.mT)


def _check_cov(name: str, s: object, *, definite: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Validate a covariance; return (symmetrized S, eigenvalues λ, eigenvectors U).

    Eigenvalues are checked against ``−rtol · max|λ|`` (PSD) or ``+rtol · max|λ|`` (PD).
    """
    s = _check_tensor(name, s)
    _check_square(name, s)
    _check_finite(name, s)
    s = _check_symmetric(name, s)
    lam, vec = torch.linalg.eigh(s)
    top = lam.abs().amax()
    lo = lam[0]
    tol = _rtol(s.dtype) * top
    if bool(lo < -tol):
        raise ValueError(
            f"{name} must be positive semi-definite, but its smallest eigenvalue is {float(lo):.3g}"
        )
    if definite and bool(lo <= tol):
        raise ValueError(
            f"{name} must be positive definite here (its inverse square root is needed), "
            f"but its smallest eigenvalue is {float(lo):.3g}; add a small ridge, e.g. "
            f"{name} + 1e-6 * torch.eye(d)"
        )
    return s, lam, vec


def _check_mean(name: str, m: object, d: int, cov_name: str) -> Tensor:
    m = _check_tensor(name, m)
    if m.ndim != 1:
        raise ValueError(f"{name} must be a vector of shape [d], got shape {tuple(m.shape)}")
    if m.shape[0] != d:
        raise ValueError(
            f"{name} has dimension {m.shape[0]} but {cov_name} is {d} x {d}; they must match"
        )
    _check_finite(name, m)
    return m


def _check_same(ref_name: str, ref: Tensor, name: str, x: Tensor) -> None:
    if x.dtype != ref.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but {ref_name} has dtype {ref.dtype}; "
            f"convert with {name}.to({ref_name}.dtype)"
        )
    if x.device != ref.device:
        raise ValueError(
            f"{name} is on {x.device} but {ref_name} is on {ref.device}; "
            f"move it with {name}.to({ref_name}.device)"
        )


def _check_pair(
    mean0: object, cov0: object, mean1: object, cov1: object, *, definite0: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Validate two Gaussians; return (m0, S0, m1, S1, λ0, U0) with S0 = U0 diag(λ0) U0ᵀ."""
    c0 = _check_tensor("cov0", cov0)
    d = _check_square("cov0", c0)
    c1 = _check_tensor("cov1", cov1)
    d1 = _check_square("cov1", c1)
    if d1 != d:
        raise ValueError(f"cov1 is {d1} x {d1} but cov0 is {d} x {d}; the dimensions must match")
    m0 = _check_mean("mean0", mean0, d, "cov0")
    m1 = _check_mean("mean1", mean1, d, "cov1")
    for name, x in (("mean0", m0), ("mean1", m1), ("cov1", c1)):
        _check_same("cov0", c0, name, x)
    s0, lam0, u0 = _check_cov("cov0", c0, definite=definite0)
    s1, _, _ = _check_cov("cov1", c1)
    return m0, s0, m1, s1, lam0, u0


def _check_epsilon(epsilon: object) -> float:
    if isinstance(epsilon, Tensor):
        if epsilon.numel() != 1:
            raise ValueError(f"epsilon must be a scalar, got a tensor of shape {tuple(epsilon.shape)}")
        epsilon = float(epsilon)
    if isinstance(epsilon, bool) or not isinstance(epsilon, Real):
        raise TypeError(f"epsilon must be a positive real number, got {type(epsilon).__name__}")
    epsilon = float(epsilon)
    if not math.isfinite(epsilon) or epsilon <= 0.0:
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon}")
    return epsilon


# --------------------------------------------------------------------------------------
# matrix functions
# --------------------------------------------------------------------------------------


def _from_eig(lam: Tensor, vec: Tensor) -> Tensor:
    """``U diag(λ) Uᵀ`` for eigenvalues ``λ [..., d]`` and eigenvectors ``U [..., d, d]``."""
    return (vec * lam.unsqueeze(-2)) @ vec.mT


def _sqrt_eig(lam: Tensor) -> Tensor:
    return lam.clamp_min(0.0).sqrt()


def _inv_sqrt_eig(lam: Tensor) -> Tensor:
    # Floor at eps · max|λ| so that a (numerically) singular matrix gives a large but finite
    # result instead of inf/NaN.
    floor = (lam.abs().amax(dim=-1, keepdim=True) * torch.finfo(lam.dtype).eps).clamp_min(
        torch.finfo(lam.dtype).tiny
    )
    return lam.clamp_min(0.0).maximum(floor).rsqrt()


def sqrtm_psd(S: Tensor) -> Tensor:
    r"""Principal square root of a symmetric positive semi-definite matrix.

    :math:`S^{1/2} = U \operatorname{diag}(\sqrt{\max(\lambda_i, 0)}) U^\top` from
    ``torch.linalg.eigh``; tiny negative eigenvalues produced by round-off are clamped to 0.
    Only the lower triangle of ``S`` is read (``eigh``'s convention); no validation is done.

    Args:
        S: ``[..., d, d]`` symmetric PSD matrix (batched allowed), float32 or float64.

    Returns:
        ``[..., d, d]`` symmetric PSD matrix ``R`` with ``R @ R ≈ S``.
    """
    lam, vec = torch.linalg.eigh(S)
    return _from_eig(_sqrt_eig(lam), vec)


def inv_sqrtm_psd(S: Tensor) -> Tensor:
    r"""Inverse principal square root :math:`S^{-1/2}` of a symmetric positive definite matrix.

    Computed as :math:`U \operatorname{diag}(\lambda_i^{-1/2}) U^\top` via ``torch.linalg.eigh``.
    Eigenvalues below ``eps · max|λ|`` (round-off, or a singular ``S``) are raised to that floor
    so the result stays finite; it is only meaningful for positive definite ``S``.

    Args:
        S: ``[..., d, d]`` symmetric positive definite matrix, float32 or float64.

    Returns:
        ``[..., d, d]`` symmetric matrix ``R`` with ``R @ S @ R ≈ I``.
    """
    lam, vec = torch.linalg.eigh(S)
    return _from_eig(_inv_sqrt_eig(lam), vec)


# --------------------------------------------------------------------------------------
# sampling and test matrices
# --------------------------------------------------------------------------------------


def sample_gaussian(
    mean: Tensor, cov: Tensor, n: int, generator: torch.Generator | None = None
) -> Tensor:
    r"""Draw ``n`` samples from :math:`\mathcal N(\text{mean}, \text{cov})`.

    ``x = mean + z Lᵀ`` with ``z ~ N(0, I)`` and ``L`` the Cholesky factor of ``cov``; if ``cov``
    is only positive semi-definite (Cholesky fails), the symmetric square root is used instead.

    Args:
        mean: ``[d]`` mean.
        cov: ``[d, d]`` symmetric PSD covariance, same dtype and device as ``mean``.
        n: number of samples (>= 0).
        generator: optional ``torch.Generator`` on ``mean``'s device, for reproducibility.

    Returns:
        ``[n, d]`` samples, dtype and device of ``mean``.
    """
    cov = _check_tensor("cov", cov)
    d = _check_square("cov", cov)
    mean = _check_mean("mean", mean, d, "cov")
    _check_same("mean", mean, "cov", cov)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    cov, lam, vec = _check_cov("cov", cov)
    factor, info = torch.linalg.cholesky_ex(cov)
    if bool(info != 0):
        factor = _from_eig(_sqrt_eig(lam), vec)
    z = torch.randn(n, d, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + z @ factor.mT


def random_spd(
    d: int,
    generator: torch.Generator | None = None,
    condition: float = 10.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""A random symmetric positive definite ``[d, d]`` matrix with condition number ``condition``.

    ``S = Q diag(λ) Qᵀ`` with ``Q`` Haar-distributed orthogonal (QR of a Gaussian matrix with
    the sign fix of Mezzadri 2007) and eigenvalues log-uniform in
    ``[condition^{-½}, condition^{½}]``, the two ends included when ``d >= 2`` so that the
    condition number is exactly ``condition`` (the geometric mean of the extreme eigenvalues
    is 1). Built in float64 on the generator's device, then cast.

    Args:
        d: dimension (>= 1).
        generator: optional ``torch.Generator`` for reproducibility.
        condition: ratio of the largest to the smallest eigenvalue (>= 1).
        dtype: floating dtype of the result.
        device: device of the result (default: CPU).

    Returns:
        ``[d, d]`` symmetric positive definite matrix.
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive int, got {d!r}")
    if not isinstance(condition, Real) or not math.isfinite(condition) or condition < 1.0:
        raise ValueError(f"condition must be a finite number >= 1, got {condition!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    g = torch.randn(d, d, generator=generator, dtype=torch.float64, device=gen_device)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, 1.0)
    half_log = 0.5 * math.log(condition)
    u = torch.rand(d, generator=generator, dtype=torch.float64, device=gen_device)
    if d >= 2:
        u[0], u[1] = 0.0, 1.0
    lam = torch.exp(half_log * (2.0 * u - 1.0))
    s = _from_eig(lam, q)
    s = 0.5 * (s + s.mT)
    return s.to(dtype=dtype, device=device if device is not None else "cpu")


# --------------------------------------------------------------------------------------
# unregularized OT
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AffineMap:
    r"""The affine map :math:`x \mapsto \text{matrix}\, x + \text{offset}`.

    Attributes:
        matrix: ``[d, d]`` linear part.
        offset: ``[d]`` translation.
    """

    matrix: Tensor
    offset: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        """Apply the map to points ``x`` of shape ``[n, d]`` (or ``[d]``); returns ``x @ matrixᵀ + offset``."""
        if x.shape[-1] != self.matrix.shape[-1]:
            raise ValueError(
                f"x has last dimension {x.shape[-1]} but the map acts on dimension "
                f"{self.matrix.shape[-1]}"
            )
        return x @ self.matrix.mT + self.offset


def w2_squared(mean0: Tensor, cov0: Tensor, mean1: Tensor, cov1: Tensor) -> Tensor:
    r"""Squared 2-Wasserstein distance between two Gaussians, for the cost ``‖x − y‖²``.

    .. math::
        W_2^2 = \|m_0 - m_1\|^2 + \operatorname{tr}\Sigma_0 + \operatorname{tr}\Sigma_1
            - 2\operatorname{tr}\big(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2}\big)^{1/2}

    (Dowson and Landau 1982; Gelbrich 1990). **Note the convention:** this is the distance for
    the full squared cost ``‖x − y‖²``; the OT cost with otkit's ``c(x, y) = ½‖x − y‖²`` is
    ``0.5 * w2_squared(...)``. Covariances may be singular (PSD).

    Args:
        mean0: ``[d]`` source mean.
        cov0: ``[d, d]`` source covariance (symmetric PSD).
        mean1: ``[d]`` target mean.
        cov1: ``[d, d]`` target covariance (symmetric PSD).

    Returns:
        0-dim tensor, ``>= 0`` up to round-off (clamped at 0).
    """
    m0, s0, m1, s1, lam0, u0 = _check_pair(mean0, cov0, mean1, cov1)
    r0 = _from_eig(_sqrt_eig(lam0), u0)
    mid = r0 @ s1 @ r0
    cross = _sqrt_eig(torch.linalg.eigvalsh(0.5 * (mid + mid.mT))).sum()
    val = (m0 - m1).square().sum() + torch.diagonal(s0).sum() + torch.diagonal(s1).sum() - 2.0 * cross
    return val.clamp_min(0.0)


def monge_map(mean0: Tensor, cov0: Tensor, mean1: Tensor, cov1: Tensor) -> AffineMap:
    r"""The optimal (Monge) map from :math:`\mathcal N(m_0, \Sigma_0)` to :math:`\mathcal N(m_1, \Sigma_1)`.

    :math:`T(x) = m_1 + A(x - m_0)` with
    :math:`A = \Sigma_0^{-1/2}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}\Sigma_0^{-1/2}`,
    symmetric PSD and satisfying :math:`A\Sigma_0 A = \Sigma_1` (so ``T`` pushes the source to
    the target). It is optimal for ``‖x − y‖²`` and for ``½‖x − y‖²`` alike.

    Args:
        mean0: ``[d]`` source mean.
        cov0: ``[d, d]`` source covariance, symmetric positive *definite*.
        mean1: ``[d]`` target mean.
        cov1: ``[d, d]`` target covariance, symmetric PSD.

    Returns:
        :class:`AffineMap` with ``matrix = A`` ``[d, d]`` and ``offset = m1 − A m0`` ``[d]``.
    """
    m0, s0, m1, s1, lam0, u0 = _check_pair(mean0, cov0, mean1, cov1, definite0=True)
    r0 = _from_eig(_sqrt_eig(lam0), u0)
    r0_inv = _from_eig(_inv_sqrt_eig(lam0), u0)
    mid = r0 @ s1 @ r0
    a = r0_inv @ sqrtm_psd(0.5 * (mid + mid.mT)) @ r0_inv
    a = 0.5 * (a + a.mT)
    return AffineMap(matrix=a, offset=m1 - a @ m0)


# --------------------------------------------------------------------------------------
# entropic OT
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntropicGaussianOT:
    r"""Solution of entropic OT between two Gaussians (see :func:`entropic_ot`).

    The optimal coupling is :math:`\pi = \mathcal N\big((m_0, m_1), \Sigma_\pi\big)` with
    :math:`\Sigma_\pi = \begin{bmatrix}\Sigma_0 & C\\ C^\top & \Sigma_1\end{bmatrix}`.

    Attributes:
        mean0: ``[d]`` source mean.
        cov0: ``[d, d]`` source covariance.
        mean1: ``[d]`` target mean.
        cov1: ``[d, d]`` target covariance.
        epsilon: regularization strength ε (absolute, in cost units).
        cross_covariance: ``[d, d]`` ``C = Cov_π(X, Y)``.
        transport_cost: 0-dim, ``E_π[½‖X − Y‖²]``.
        kl: 0-dim, ``KL(π | μ⊗ν)`` (the mutual information of ``X`` and ``Y`` under π).
        objective: 0-dim, ``transport_cost + epsilon · kl`` = ``OT_ε(μ, ν)``.
    """

    mean0: Tensor
    cov0: Tensor
    mean1: Tensor
    cov1: Tensor
    epsilon: float
    cross_covariance: Tensor
    transport_cost: Tensor
    kl: Tensor
    objective: Tensor

    def coupling_covariance(self) -> Tensor:
        """``[2d, 2d]`` covariance ``[[Σ0, C], [Cᵀ, Σ1]]`` of the optimal coupling."""
        c = self.cross_covariance
        top = torch.cat([self.cov0, c], dim=1)
        bottom = torch.cat([c.mT, self.cov1], dim=1)
        return torch.cat([top, bottom], dim=0)

    def coupling_mean(self) -> Tensor:
        """``[2d]`` mean ``(m0, m1)`` of the optimal coupling."""
        return torch.cat([self.mean0, self.mean1])

    def map(self) -> AffineMap:
        r"""The entropic (barycentric) map :math:`x \mapsto \mathbb E_\pi[Y \mid X = x]`.

        :math:`m_1 + C^\top\Sigma_0^{-1}(x - m_0)`; its matrix :math:`C^\top\Sigma_0^{-1}` is
        symmetric PSD and tends to the Monge matrix as ε → 0. Requires ``cov0`` positive
        definite (raises ValueError otherwise).
        """
        _, lam0, u0 = _check_cov("cov0", self.cov0, definite=True)
        r0_inv = _from_eig(_inv_sqrt_eig(lam0), u0)
        r0 = _from_eig(_sqrt_eig(lam0), u0)
        # C = Σ0^½ K Σ0^{-½} with K symmetric, so K = Σ0^{-½} C Σ0^½ and
        # Cᵀ Σ0⁻¹ = Σ0^{-½} K Σ0^{-½} (symmetric PSD by construction).
        k = r0_inv @ self.cross_covariance @ r0
        k = 0.5 * (k + k.mT)
        a = r0_inv @ k @ r0_inv
        a = 0.5 * (a + a.mT)
        return AffineMap(matrix=a, offset=self.mean1 - a @ self.mean0)

    def transport(self, x: Tensor) -> Tensor:
        """Apply the entropic map to ``x`` ``[n, d]``; returns ``[n, d]``."""
        return self.map()(x)

    def sample_pairs(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` pairs ``(x, y)`` from the optimal coupling; returns two ``[n, d]`` tensors."""
        z = sample_gaussian(self.coupling_mean(), self.coupling_covariance(), n, generator)
        d = self.mean0.shape[0]
        return z[:, :d], z[:, d:]


def entropic_ot(
    mean0: Tensor, cov0: Tensor, mean1: Tensor, cov1: Tensor, epsilon: float
) -> EntropicGaussianOT:
    r"""Closed-form entropic OT between :math:`\mathcal N(m_0, \Sigma_0)` and :math:`\mathcal N(m_1, \Sigma_1)`.

    Solves :math:`\min_\pi \mathbb E_\pi[\tfrac12\|X - Y\|^2] + \varepsilon\,\mathrm{KL}(\pi|\mu\otimes\nu)`
    (Janati, Muzellec, Peyré, Cuturi, "Entropic optimal transport between unbalanced Gaussian
    measures has a closed form", NeurIPS 2020, Theorem 1, balanced case, with their
    ``σ² = ε`` and half their value; Mallasto et al. 2021; del Barrio and Loubes 2020). With
    ``M = Σ0^½ Σ1 Σ0^½ = U diag(m) Uᵀ`` and ``G = 2 (√(4M + ε²I) + εI)⁻¹``:

    * ``C = Σ0^½ G Σ0^½ Σ1`` (= ½(Σ0^½ D_ε Σ0^{-½} − εI), ``D_ε = (4M + ε²I)^½``);
    * ``transport_cost = ½(‖m0 − m1‖² + tr Σ0 + tr Σ1 − 2 Σ_i k_i)``,
      ``k_i = 2 m_i / (√(4 m_i + ε²) + ε)``;
    * ``kl = ½ Σ_i log((√(4 m_i + ε²) + ε) / (2ε))``
      (= ½(log det Σ0 + log det Σ1 − log det Σ_π), the mutual information);
    * ``objective = transport_cost + ε · kl``.

    The joint precision matrix of the coupling has off-diagonal block ``−I/ε``: the optimal
    density is ``∝ exp((f(x) + g(y) − ½‖x − y‖²)/ε)`` with quadratic ``f, g``.
    See the module docstring for the derivation. Covariances may be singular (PSD); only
    :meth:`EntropicGaussianOT.map` needs ``cov0`` positive definite.

    Args:
        mean0: ``[d]`` source mean.
        cov0: ``[d, d]`` source covariance (symmetric PSD).
        mean1: ``[d]`` target mean.
        cov1: ``[d, d]`` target covariance (symmetric PSD).
        epsilon: regularization ε > 0 (absolute, in units of the cost ½‖x − y‖²).

    Returns:
        :class:`EntropicGaussianOT`, tensors on the inputs' device and dtype.
    """
    eps = _check_epsilon(epsilon)
    m0, s0, m1, s1, lam0, u0 = _check_pair(mean0, cov0, mean1, cov1)
    r0 = _from_eig(_sqrt_eig(lam0), u0)
    mid = r0 @ s1 @ r0
    m_eig, u = torch.linalg.eigh(0.5 * (mid + mid.mT))
    m_eig = m_eig.clamp_min(0.0)
    root = torch.sqrt(4.0 * m_eig + eps * eps)  # eigenvalues of D_ε
    g_eig = 2.0 / (root + eps)  # eigenvalues of G = 2 (D_ε + εI)⁻¹
    k_eig = m_eig * g_eig  # eigenvalues of K = (D_ε − εI)/2, computed without cancellation
    cross = r0 @ _from_eig(g_eig, u) @ r0 @ s1
    transport_cost = 0.5 * (
        (m0 - m1).square().sum() + torch.diagonal(s0).sum() + torch.diagonal(s1).sum() - 2.0 * k_eig.sum()
    )
    # log((√(4m + ε²) + ε)/(2ε)) = log1p(k/ε) since k = (√(4m + ε²) − ε)/2: no cancellation.
    kl = 0.5 * torch.log1p(k_eig / eps).sum()
    return EntropicGaussianOT(
        mean0=m0,
        cov0=s0,
        mean1=m1,
        cov1=s1,
        epsilon=eps,
        cross_covariance=cross,
        transport_cost=transport_cost,
        kl=kl,
        objective=transport_cost + eps * kl,
    )
