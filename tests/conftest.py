"""Shared fixtures for otkit's tests: seeds and synthetic point clouds.

Nothing here changes otkit's behaviour unasked: no autouse fixtures, no global flags. Tests
ask for what they need.

* ``seed``: seeds torch's global generator (for code that draws from it) and returns the seed;
* ``generator``: a fresh, seeded ``torch.Generator`` (pass it explicitly: preferred);
* ``make_clouds``: a factory for a source/target pair of Gaussian-mixture clouds with
  optional non-uniform weights, of any size, dimension and dtype;
* ``eager_one_thread`` (widget tests) and ``one_thread_kernels`` (browser tests, for the
  kernels they start): the environment and thread count for small solves on a busy machine.
"""

from __future__ import annotations

import pytest
import torch

SEED = 0


def gaussian_mixture(
    n: int,
    d: int = 2,
    *,
    components: int = 3,
    spread: float = 2.0,
    scale: float = 0.5,
    shift: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``n`` points in ``R^d`` from a mixture of ``components`` isotropic Gaussians.

    Centres are drawn from N(0, spread² I), each point picks a centre uniformly and adds
    N(0, scale² I) noise; ``shift`` is added to every coordinate. Draws in float64 then casts,
    so the same generator gives the same cloud (up to rounding) in every dtype.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(SEED)
    centres = spread * torch.randn(components, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, components, (n,), generator=gen)
    points = centres[labels] + scale * torch.randn(n, d, generator=gen, dtype=torch.float64)
    return (points + shift).to(dtype)


def random_weights(
    n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Non-uniform positive weights of total mass 1 (ratios up to about 10)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(SEED)
    w = 0.1 + torch.rand(n, generator=gen, dtype=torch.float64)
    return (w / w.sum()).to(dtype)


@pytest.fixture
def seed() -> int:
    """Seed torch's global generator; returns the seed."""
    torch.manual_seed(SEED)
    return SEED


@pytest.fixture
def generator() -> torch.Generator:
    """A fresh CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(SEED)


@pytest.fixture
def make_clouds():
    """Factory: ``make_clouds(n, m, d=2, dtype=..., weights=True, seed=0, shift=0.0)``.

    Returns ``(x, y, a, b)``: Gaussian-mixture clouds ``x: [n, d]`` and ``y: [m, d]`` (the
    target mixture displaced by one unit so the problem is not trivial) and weights ``a, b``
    (non-uniform when ``weights``, else uniform), all in ``dtype``.
    """

    def make(
        n: int,
        m: int,
        d: int = 2,
        *,
        dtype: torch.dtype = torch.float64,
        weights: bool = True,
        seed: int = SEED,
        shift: float = 0.0,
    ):
        gen = torch.Generator().manual_seed(seed)
        x = gaussian_mixture(n, d, generator=gen, dtype=dtype, shift=shift)
        y = gaussian_mixture(m, d, generator=gen, dtype=dtype, shift=shift + 1.0)
        if weights:
            a = random_weights(n, generator=gen, dtype=dtype)
            b = random_weights(m, generator=gen, dtype=dtype)
        else:
            a = torch.full((n,), 1.0 / n, dtype=dtype)
            b = torch.full((m,), 1.0 / m, dtype=dtype)
        return x, y, a, b

    return make


@pytest.fixture
def one_thread_kernels(monkeypatch):
    """For browser tests: the Jupyter kernels they start inherit these. On a busy 2-core
    machine OpenMP's barriers make a widget's small solves crawl with 2 threads, and eager
    kernels skip torch.compile's warm-up."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OTKIT_COMPILE", "0")


@pytest.fixture
def eager_one_thread(monkeypatch):
    """For widget computations in-process: eager kernels (compiling costs seconds per process
    and is tested in test_kernels) and one torch thread (on a busy 2-core machine OpenMP's
    barriers make small solves crawl), restored afterwards."""
    monkeypatch.setenv("OTKIT_COMPILE", "0")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
