"""Multiscale Sinkhorn against dense online Sinkhorn and GeomLoss's multiscale mode, in one run:
``python -m benchmarks.multiscale``.

Problem: benchmarks/sinkhorn.py's clouds (two 5-component Gaussian mixtures, float32, d = 2),
cost C = ½‖x − y‖², ε = relative ε × std(C) (otkit's definition), uniform weights, L1
tolerance ``--tol``. Solvers, each timed once after a warm-up (compiles, KeOps builds):

* ``otkit-multiscale``: :func:`otkit.multiscale.multiscale_sinkhorn` (``epsilon``, ``tol``);
* ``otkit-multiscale-sor``: the same with ``overrelaxation=1.6`` (over-relaxed iterations at
  the final ε, then plain ones to the same stopping rule);
* ``otkit-online``: :func:`otkit.sinkhorn` with ``backend="torch", mode="online"`` (the warm-up
  runs 3 iterations; skipped above ``--online-max`` points);
* ``geomloss-multiscale``: ``SamplesLoss("sinkhorn", p=2, blur=√ε, debias=False,
  potentials=True, backend="multiscale", scaling=0.5)`` (KeOps; cost ½‖x − y‖², ε = blur²).
  It has no tolerance: its reached error is reported as it is.

Every answer is measured the same way, in float64 on the full n × m plan built from the
returned potentials (benchmarks.sinkhorn.evaluate): the L1 marginal error
max(‖P1 − a‖₁, ‖Pᵀ1 − b‖₁) and the cost ⟨P, C⟩. Times are wall and CPU seconds of this
process (one thread: ``OMP_NUM_THREADS=1``); on a shared machine the CPU time is the steadier
number, and the ratios are taken on it. ``--no-eval`` skips the float64 check (large n).

Example::

    OMP_NUM_THREADS=1 python -m benchmarks.multiscale --sizes 20000 --eps 0.01,0.001
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings

import numpy as np
import torch

from benchmarks.sinkhorn import clouds, cost_std, evaluate


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run_multiscale(x, y, eps, tol, omega=1.0):
    from otkit.multiscale import multiscale_sinkhorn

    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    kw = dict(epsilon=eps, tol=tol, overrelaxation=omega)
    multiscale_sinkhorn(X, Y, **kw)  # warm-up: every compiled shape
    r, wall, cpu = _timed(lambda: multiscale_sinkhorn(X, Y, **kw))
    note = (f"{r.n_iter} fine + {r.coarse_iterations} coarse iters, kept "
            f"{100 * r.kept_fraction:.1f}% of cells, leaves {r.leaves[0]}, own error "
            f"{r.errors[-1].item():.2e}")
    return r.f.numpy(), r.g.numpy(), wall, cpu, note


def run_online(x, y, eps, tol):
    import otkit

    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", otkit.ConvergenceWarning)
        otkit.sinkhorn(X, Y, epsilon=eps, tol=tol, max_iter=3, backend="torch", mode="online")
        r, wall, cpu = _timed(lambda: otkit.sinkhorn(
            X, Y, epsilon=eps, tol=tol, max_iter=5000, backend="torch", mode="online"))
    return r.f.numpy(), r.g.numpy(), wall, cpu, f"{r.n_iter} iters"


def run_geomloss(x, y, eps, tol):
    from geomloss import SamplesLoss

    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    a = torch.full((len(x),), 1.0 / len(x))
    b = torch.full((len(y),), 1.0 / len(y))
    loss = SamplesLoss("sinkhorn", p=2, blur=math.sqrt(eps), debias=False, potentials=True,
                       backend="multiscale", scaling=0.5)
    loss(a, X, b, Y)  # warm-up (KeOps compiles its formulas on first use)
    (f, g), wall, cpu = _timed(lambda: loss(a, X, b, Y))
    return f.reshape(-1).numpy(), g.reshape(-1).numpy(), wall, cpu, "no tolerance"


SOLVERS = {"otkit-multiscale": run_multiscale,
           "otkit-multiscale-sor": lambda x, y, eps, tol: run_multiscale(x, y, eps, tol, 1.6),
           "otkit-online": run_online,
           "geomloss-multiscale": run_geomloss}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20000")
    p.add_argument("--eps", default="0.01", help="relative epsilons (x std of the cost)")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--solvers", default=",".join(SOLVERS))
    p.add_argument("--online-max", type=int, default=20000)
    p.add_argument("--no-eval", action="store_true")
    args = p.parse_args(argv)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| n | ε rel | ε | solver | wall s | CPU s | × multiscale (CPU) | L1 err | ⟨P,C⟩ "
          "| note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        x, y = clouds(n, 2)
        for rel in (float(e) for e in args.eps.split(",")):
            eps = rel * cost_std(x, y)
            base = None
            for name in args.solvers.split(","):
                if name == "otkit-online" and n > args.online_max:
                    continue
                try:
                    f, g, wall, cpu, note = SOLVERS[name](x, y, eps, args.tol)
                except Exception as err:  # a missing library, KeOps failing to build
                    print(f"| {n:,} | {rel} | {eps:.4g} | {name} | failed | – | – | – | – | "
                          f"{type(err).__name__}: {str(err)[:80]} |", flush=True)
                    continue
                base = cpu if name == "otkit-multiscale" else base
                ratio = f"{cpu / base:.2f}" if base else "–"
                if args.no_eval:
                    err, cost = "–", "–"
                else:
                    row, col, total = evaluate(x, y, np.asarray(f), np.asarray(g), eps)
                    err, cost = f"{max(row, col):.2e}", f"{total:.5g}"
                print(f"| {n:,} | {rel} | {eps:.4g} | {name} | {wall:.2f} | {cpu:.2f} | "
                      f"{ratio} | {err} | {cost} | {note} |", flush=True)


if __name__ == "__main__":
    main()
