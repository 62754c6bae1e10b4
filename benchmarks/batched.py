"""B small Sinkhorn problems at once: ``python -m benchmarks.batched``.

Minibatch OT flow matching and the widgets solve many small problems. Compared here, on the
same B problems (x ~ N(0, I₂), y ~ N(0, I₂) + (1, −½), float32, absolute ε, L1 tol):

* ``otkit-batch``: :func:`otkit.sinkhorn` on ``[B, n, d]`` clouds (one call);
* ``otkit-loop``: :func:`otkit.sinkhorn` on each problem, in a Python loop;
* ``pot-loop``: ``ot.bregman.sinkhorn_log`` on each problem (cost ‖x − y‖² with reg 2ε, as in
  benchmarks/sinkhorn.py; stopThr tol/√m on the L2 column error, so L1 ≤ tol);
* ``ott-vmap``: OTT-JAX's ``Sinkhorn`` vmapped over the problems, jitted (compiled before
  timing), when ott-jax is installed (``make bench`` installs it).

Times are medians of ``--repeat`` runs after one warm-up. Every answer's accuracy is measured
the same way from its potentials, in float64: the worst L1 marginal error over the problems.
The ratio column is the time over otkit-batch's.

    python -m benchmarks.batched                  # B = 256, n = 64 and B = 64, n = 256
    python -m benchmarks.batched --cases 32x512 --repeat 5
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import numpy as np
import torch

import otkit


def _clouds(batch: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, 2, generator=gen)
    y = torch.randn(batch, n, 2, generator=gen) + torch.tensor([1.0, -0.5])
    return x, y


def _error(x, y, f, g, eps: float) -> float:
    """Worst L1 marginal error over problems of the plans a b exp((f + g − C)/ε), float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
    n, m = x.shape[1], y.shape[1]
    cost = 0.5 * ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)
    plan = np.exp((f[:, :, None] + g[:, None, :] - cost) / eps) / (n * m)
    rows = np.abs(plan.sum(2) - 1.0 / n).sum(1)
    cols = np.abs(plan.sum(1) - 1.0 / m).sum(1)
    return float(np.maximum(rows, cols).max())


def _otkit_batch(x, y, eps, tol):
    res = otkit.sinkhorn(x, y, epsilon=eps, tol=tol)
    return res.f, res.g, int(res.n_iter.max())


def _otkit_loop(x, y, eps, tol):
    out = [otkit.sinkhorn(x[k], y[k], epsilon=eps, tol=tol, backend="torch", mode="dense")
           for k in range(x.shape[0])]
    return (torch.stack([r.f for r in out]), torch.stack([r.g for r in out]),
            max(r.n_iter for r in out))


def _pot_loop(x, y, eps, tol):
    import ot

    n, m = x.shape[1], y.shape[1]
    a, b = torch.full((n,), 1.0 / n), torch.full((m,), 1.0 / m)
    fs, gs, iters = [], [], 0
    for k in range(x.shape[0]):
        cost = ot.dist(x[k], y[k])  # ‖x − y‖² = 2C
        _, log = ot.bregman.sinkhorn_log(a, b, cost, reg=2 * eps, stopThr=tol / math.sqrt(m),
                                         numItermax=10_000, log=True)
        # POT: P = exp(log u + log v − 2C/(2ε)) = a b exp((f + g − C)/ε): f = ε(log u + log n)
        fs.append(eps * (log["log_u"] + math.log(n)))
        gs.append(eps * (log["log_v"] + math.log(m)))
        iters = max(iters, int(log["niter"]))
    return torch.stack(fs), torch.stack(gs), iters


class _OttVmap:
    def __init__(self, x, y, eps, tol):
        import jax
        import jax.numpy as jnp
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn

        solver = sinkhorn.Sinkhorn(threshold=tol, norm_error=1, max_iterations=10_000)

        def one(xs, ys):
            out = solver(linear_problem.LinearProblem(pointcloud.PointCloud(xs, ys, epsilon=2 * eps)))
            return out.f, out.g, out.n_iters

        self.jax, self.eps = jax, eps
        self.xj, self.yj = jnp.asarray(x.numpy()), jnp.asarray(y.numpy())
        self.fn = jax.jit(jax.vmap(one)).lower(self.xj, self.yj).compile()
        self.n, self.m = x.shape[1], y.shape[1]

    def __call__(self, x, y, eps, tol):
        f, g, n_iter = self.jax.block_until_ready(self.fn(self.xj, self.yj))
        # OTT: P = exp((f' + g' − 2C)/(2ε)) = a b exp((f + g − C)/ε): f = f'/2 + ε log n
        f = np.asarray(f, np.float64) / 2 + eps * math.log(self.n)
        g = np.asarray(g, np.float64) / 2 + eps * math.log(self.m)
        return f, g, int(np.max(n_iter))


def _time(fn, x, y, eps, tol, repeat):
    fn(x, y, eps, tol)  # warm-up (compiles kernels where a library compiles)
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(x, y, eps, tol)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="256x64,64x256", help="BxN pairs, comma separated")
    parser.add_argument("--eps", type=float, default=0.05, help="absolute epsilon")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--solvers", default="otkit-batch,otkit-loop,pot-loop,ott-vmap")
    args = parser.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), eps {args.eps}, tol {args.tol}")
    print("| B × n | solver | time (s) | × otkit-batch | max iterations | worst L1 error |")
    print("|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        batch, n = (int(v) for v in case.split("x"))
        x, y = _clouds(batch, n)
        base = None
        for name in args.solvers.split(","):
            try:
                if name == "ott-vmap":
                    fn = _OttVmap(x, y, args.eps, args.tol)
                else:
                    fn = {"otkit-batch": _otkit_batch, "otkit-loop": _otkit_loop,
                          "pot-loop": _pot_loop}[name]
                seconds, (f, g, iters) = _time(fn, x, y, args.eps, args.tol, args.repeat)
            except ImportError as err:
                print(f"| {batch} × {n} | {name} | skipped ({err.name} not installed) | | | |")
                continue
            base = seconds if name == "otkit-batch" else base
            ratio = f"{seconds / base:.2f}" if base else ""
            err = _error(x, y, f, g, args.eps)
            print(f"| {batch} × {n} | {name} | {seconds:.3f} | {ratio} | {iters} | {err:.1e} |")


if __name__ == "__main__":
    main()
