"""Low-rank fused GW (issue 21) at scale: ``python -m benchmarks.lowrank_gw scale``.

Notebook 09's section-5 problem (two bent tissue slices, slice B rotated by 2 rad and shifted,
expression with extra noise; rank 20, α = 0.5, balanced), n = m cells per slice, a fixed number
of outer steps (``max_iter = min_iter = --steps``, ``tol`` = 1e-30), one fresh subprocess per n.
Per n it reports CPU seconds (``time.process_time``, one torch thread: wall time on a shared
machine measures the other processes, not the solver), split into the outer steps and the final
tight projection (``final_tol`` = 1e-8), the inner (projection) iterations of each step, and
memory: the subprocess's peak RSS minus its RSS before solving (data and imports excluded).
The inner iterations are counted by wrapping :func:`otkit.lowrank.solver._project` (it stops
on the duals' change; the count is read off the number of row log-sum-exps it takes).

Results go as JSON lines to ``benchmarks/out/lowrank_gw_scale.jsonl`` (git-ignored) and a
Markdown table is printed.

Example::

    python -m benchmarks.lowrank_gw scale --sizes 10000,30000,100000 --steps 10
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)

OUT = Path(__file__).parent / "out"


def _slices(n: int, seed: int = 0):
    """Notebook 09's bent, moved slices (section 5): positions and expression."""
    from otkit.data import tissue_slices

    angle = 2.0
    rotation = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float64)
    match, pa, pb = tissue_slices(n, seed=seed, dtype=torch.float64)
    pa, pb = (torch.stack([p[:, 0], p[:, 1] ** 1.7], 1) for p in (pa, pb))
    gen = torch.Generator().manual_seed(seed)
    xa, yb = (e + 2.0 * torch.randn(e.shape, generator=gen, dtype=e.dtype) for e in (match.x, match.y))
    unit = ((xa - xa.mean(0)) ** 2).sum(1).mean().sqrt()
    return pa, pb @ rotation.T + torch.tensor([3.0, -1.0], dtype=torch.float64), xa / unit, yb / unit


def cmd_one(args) -> None:
    """In a fresh subprocess: one n; prints one JSON line."""
    gromov = importlib.import_module("otkit.lowrank.gromov")
    pa, pb, xa, yb = _slices(args.n)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    project, calls = gromov._project, []

    def counted(*pargs):
        real, count = torch.logsumexp, [0]

        def lse(t, dim, *a, **k):
            count[0] += dim == 1  # two row log-sum-exps (Q, R) per inner iteration
            return real(t, dim, *a, **k)

        torch.logsumexp, start = lse, time.process_time()
        try:
            return project(*pargs)
        finally:
            torch.logsumexp = real
            calls.append((count[0] // 2, time.process_time() - start))

    gromov._project = counted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fixed number of steps, by design
        wall, cpu = time.perf_counter(), time.process_time()
        fit = gromov.lowrank_gw(pa, pb, rank=args.rank, features=(xa, yb), alpha=0.5, max_iter=args.steps,
                                min_iter=args.steps, tol=1e-30, generator=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    inner = [c[0] for c in calls]
    final_cpu = calls[-1][1]
    steps_cpu = cpu - final_cpu
    print(json.dumps(dict(
        n=args.n, rank=args.rank, steps=fit.n_iter, cpu=cpu, wall=wall, cpu_per_step=steps_cpu / fit.n_iter,
        us_per_point_step=1e6 * steps_cpu / fit.n_iter / (2 * args.n), final_projection_cpu=final_cpu,
        inner_per_step=inner[:-1], inner_final=inner[-1], rss_base_mb=base / 1024, rss_peak_mb=peak / 1024,
        solver_mb=(peak - base) / 1024, cost=fit.ot_cost().item(), load=os.getloadavg()[0])), flush=True)


def cmd_scale(args) -> None:
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, "-m", "benchmarks.lowrank_gw", "_one", "--n", str(n), "--steps", str(args.steps),
               "--rank", str(args.rank)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if not lines:
            print(f"n={n} failed: {proc.stderr[-500:]}", file=sys.stderr)
            continue
        row = json.loads(lines[-1])
        row.update(machine=f"{platform.node()} {platform.processor() or platform.machine()}",
                   date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        OUT.mkdir(parents=True, exist_ok=True)
        with (OUT / "lowrank_gw_scale.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| n = m | CPU s / step | µs / (point·step) | inner iters / step (median, max) | final projection "
          "(CPU s, iters) | wall s (load) | solver peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        inner = r["inner_per_step"]
        print(f"| {r['n']:,} | {r['cpu_per_step']:.3f} | {r['us_per_point_step']:.2f} | "
              f"{int(np.median(inner))}, {max(inner)} | {r['final_projection_cpu']:.2f}, {r['inner_final']} | "
              f"{r['wall']:.1f} ({r['load']:.0f}) | {r['solver_mb']:.0f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    scale = sub.add_parser("scale", help="CPU time, inner iterations and memory against n")
    scale.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",") if v], default=[10_000, 30_000, 100_000])
    scale.add_argument("--steps", type=int, default=10)
    scale.add_argument("--rank", type=int, default=20)
    one = sub.add_parser("_one")
    one.add_argument("--n", type=int, required=True)
    one.add_argument("--steps", type=int, default=10)
    one.add_argument("--rank", type=int, default=20)
    args = parser.parse_args(argv)
    {"scale": cmd_scale, "_one": cmd_one}[args.cmd](args)


if __name__ == "__main__":
    main()
