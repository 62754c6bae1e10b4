"""Low-rank OT (issue 10) against its peers: ``python -m benchmarks.lowrank <cmd>``.

Subcommands:

* ``pot``: balanced problems (``two_clouds(n, kind="gaussians", d=d)``, n = m), otkit.lowrank
  against POT's ``ot.lowrank_sinkhorn`` (numpy float64, its defaults: 100 outer steps, cost
  rescaled by its max). Both in float64. Reports wall time, the cost ⟨C, P⟩ on C = ½‖x − y‖²
  (POT's factors are scored with otkit's convention, in O((n + m)·d·r)), the L1 marginal
  error of both marginals, and exact OT (``ot.emd2``, float64) where n ≤ ``--emd-max``.
* ``scale``: time and peak memory of otkit.lowrank (float32, rank 10) for a fixed number of
  outer steps (``max_iter = min_iter = --steps``, ``tol = 0``), one fresh subprocess per
  (n, d); memory is the process's peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``),
  minus that of the same subprocess at n = 1,000 before solving (imports, torch). Also times
  otkit.sinkhorn dense and online at the sizes given by ``--sinkhorn-sizes`` (one run each,
  ``--sinkhorn-iters`` iterations, capped by ``--sinkhorn-timeout``) and lists the memory a
  dense cost matrix would need.
* ``unbalanced``: ``clouds_with_outliers(n)`` (10% outliers in y, uniform weights of mass 1
  on both sides): unbalanced low rank (KL penalty ρ = ``--rho`` in cost units, rank 10),
  balanced low rank, and full unbalanced Sinkhorn at ε with the same ``rho_a = rho_b = ρ``.
  Reports time, the share of the plan's mass sent to the outliers, the plan's total mass and
  the barycentric error mean ‖T̂(x_i) − truth_i‖.

Results go as JSON lines to ``benchmarks/out/lowrank_<cmd>.jsonl`` (git-ignored); the tables
are printed. Threads: ``torch.set_num_threads(--threads)`` (default 1).

Examples::

    python -m benchmarks.lowrank pot --sizes 1000,4000,10000
    python -m benchmarks.lowrank scale --sizes 1000,10000,100000,1000000 --dims 2,32
    python -m benchmarks.lowrank unbalanced --sizes 2000,10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

torch.set_num_threads(1)

OUT = Path(__file__).parent / "out"


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s)")


def _lr_cost(x: torch.Tensor, y: torch.Tensor, q, r, g) -> float:
    """⟨½‖x − y‖², Q diag(1/g) Rᵀ⟩ in O((n + m)·d·r), float64."""
    from otkit.lowrank import factorize_cost

    a_fac, b_fac = factorize_cost(x.double(), y.double(), "sqeuclidean")
    q, r, g = (torch.as_tensor(t, dtype=torch.float64) for t in (q, r, g))
    return ((a_fac.T @ q) * (b_fac.T @ r) / g).sum().item()


def _fmt(v, spec=".4g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)



# --------------------------------------------------------------------------- pot


def cmd_pot(args) -> None:
    import numpy as np
    import ot

    import otkit
    from otkit.data import two_clouds

    out = OUT / "lowrank_pot.jsonl"
    rows = []
    for n in args.sizes:
        for d in args.dims:
            x, y = two_clouds(n, kind="gaussians", d=d, seed=args.seed, dtype=torch.float64)
            a = torch.full((n,), 1.0 / n, dtype=torch.float64)
            exact = None
            if n <= args.emd_max:
                xn, yn = x.numpy(), y.numpy()
                t0 = time.perf_counter()
                m_full = 0.5 * ot.dist(xn, yn)  # ½‖x − y‖²
                exact = float(ot.emd2(a.numpy(), a.numpy(), m_full, numItermax=10**7))
                t_emd = time.perf_counter() - t0
                del m_full
            for rank in args.ranks:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    res = otkit.lowrank(x, y, rank=rank, generator=args.seed)
                    t_ok = time.perf_counter() - t0
                    c_ok = res.ot_cost().item()
                    e_ok = res.marginal_error()
                    t0 = time.perf_counter()  # POT's own budget: 100 outer steps
                    res100 = otkit.lowrank(x, y, rank=rank, generator=args.seed, max_iter=100,
                                           min_iter=100, tol=0.0)
                    t_100 = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    q, r, g = ot.lowrank_sinkhorn(x.numpy(), y.numpy(), rank=rank,
                                                  seed_init=args.seed)
                    t_pot = time.perf_counter() - t0
                c_pot = _lr_cost(x, y, q, r, g)
                rq, rr = q.sum(1), r.sum(1)
                e_pot = float(np.abs(rq - 1.0 / n).sum() + np.abs(rr - 1.0 / n).sum())
                row = dict(n=n, d=d, rank=rank, t_otkit=t_ok, it_otkit=res.n_iter,
                           conv_otkit=res.converged, cost_otkit=c_ok, err_otkit=e_ok,
                           t_otkit100=t_100, cost_otkit100=res100.ot_cost().item(),
                           t_pot=t_pot, cost_pot=c_pot, err_pot=e_pot, exact=exact,
                           t_emd=t_emd if exact is not None else None, machine=_machine())
                _append(out, row)
                rows.append(row)
                print(json.dumps(row), flush=True)
    _print_pot(rows)


def _print_pot(rows) -> None:
    print("\n| n | d | rank | otkit s (steps) | otkit 100 steps s | POT s (100 steps) | "
          "time otkit/POT | time otkit100/POT | cost otkit | cost otkit100 | cost POT "
          "| cost otkit/POT | cost otkit100/POT | exact OT | otkit/exact | POT/exact "
          "| marg. err otkit | POT |")
    print("|" + "---|" * 18)
    for r in rows:
        ex = r["exact"]
        print(f"| {r['n']} | {r['d']} | {r['rank']} | {r['t_otkit']:.2f} ({r['it_otkit']}"
              f"{'' if r['conv_otkit'] else '*'}) | {r['t_otkit100']:.2f} | {r['t_pot']:.2f} | "
              f"{r['t_otkit'] / r['t_pot']:.2f} | {r['t_otkit100'] / r['t_pot']:.2f} | "
              f"{r['cost_otkit']:.5g} | {r['cost_otkit100']:.5g} | {r['cost_pot']:.5g} | "
              f"{r['cost_otkit'] / r['cost_pot']:.4f} | {r['cost_otkit100'] / r['cost_pot']:.4f} | "
              f"{_fmt(ex, '.5g')} | "
              f"{_fmt(r['cost_otkit'] / ex if ex else None, '.4f')} | "
              f"{_fmt(r['cost_pot'] / ex if ex else None, '.4f')} | "
              f"{r['err_otkit']:.1e} | {r['err_pot']:.1e} |")


# --------------------------------------------------------------------------- scale


def cmd_scale_one(args) -> None:
    """Runs in a fresh subprocess: one (n, d); prints one JSON line."""
    import otkit

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    gen = torch.Generator().manual_seed(0)
    n, d = args.n, args.d
    if args.solver == "lowrank":
        x = torch.randn(n, d, generator=gen)
        y = torch.randn(n, d, generator=gen) * 0.8 + 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            res = otkit.lowrank(x, y, rank=args.rank, max_iter=args.steps, min_iter=args.steps,
                                tol=0.0, generator=0)
            total = time.perf_counter() - t0
        row = dict(solver="lowrank", n=n, d=d, rank=args.rank, steps=res.n_iter, t=total,
                   t_step=total / res.n_iter, cost=res.ot_cost().item(),
                   err=res.marginal_error())
    else:
        x = torch.randn(n, d, generator=gen)
        y = torch.randn(n, d, generator=gen) * 0.8 + 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a 1-iteration run at n = 1000 first: the backend compiles (~20 s) on first use
            t0 = time.perf_counter()
            otkit.sinkhorn(x[:1000], y[:1000], epsilon=args.epsilon, mode=args.solver,
                           max_iter=1, tol=1e-9)
            warm = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = otkit.sinkhorn(x, y, epsilon=args.epsilon, mode=args.solver,
                                 max_iter=args.steps, tol=1e-9)
            total = time.perf_counter() - t0
        it = int(getattr(res, "n_iter", args.steps))
        row = dict(solver=args.solver, n=n, d=d, steps=it, t=total, t_step=total / max(it, 1),
                   t_first_1iter=warm, backend=getattr(res, "backend", None))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    row.update(rss_base_mb=base / 1024, rss_peak_mb=peak / 1024)
    print(json.dumps(row), flush=True)


def _sub(argv: list[str], timeout: float) -> dict | None:
    cmd = [sys.executable, "-m", "benchmarks.lowrank", "_scale_one", *argv]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    return {"failed": proc.returncode, "stderr": proc.stderr[-500:]}


def cmd_scale(args) -> None:
    out = OUT / "lowrank_scale.jsonl"
    rows = []
    for d in args.dims:
        for n in args.sizes:
            row = _sub(["--solver", "lowrank", "--n", str(n), "--d", str(d), "--rank",
                        str(args.rank), "--steps", str(args.steps)], args.timeout)
            row.update(n=n, d=d, machine=_machine())
            _append(out, row)
            rows.append(row)
            print(json.dumps(row), flush=True)
    srows = []
    for n in args.sinkhorn_sizes:
        for mode in ("dense", "online"):
            need = n * n * 4 / 2**30
            if mode == "dense" and need > args.dense_max_gb:
                row = dict(solver=mode, n=n, d=args.sinkhorn_d, skipped=f"needs {need:.1f} GiB")
            else:
                row = _sub(["--solver", mode, "--n", str(n), "--d", str(args.sinkhorn_d),
                            "--steps", str(args.sinkhorn_iters), "--epsilon", "0.5"],
                           args.sinkhorn_timeout)
                row.update(n=n, d=args.sinkhorn_d, solver=mode)
            row["machine"] = _machine()
            _append(out, row)
            srows.append(row)
            print(json.dumps(row), flush=True)
    _print_scale(rows, srows)


def _print_scale(rows, srows) -> None:
    print("\n| d | n = m | steps | total s | s / step | µs / step / n | peak RSS MiB | "
          "RSS − base MiB | dense C float32 would need |")
    print("|" + "---|" * 9)
    for r in rows:
        need = r["n"] ** 2 * 4 / 2**30
        if "t" not in r:
            print(f"| {r['d']} | {r['n']} | – | {r} | | | | | {need:,.2f} GiB |")
            continue
        print(f"| {r['d']} | {r['n']:,} | {r['steps']} | {r['t']:.2f} | {r['t_step']:.4f} | "
              f"{1e6 * r['t_step'] / r['n']:.3f} | {r['rss_peak_mb']:.0f} | "
              f"{r['rss_peak_mb'] - r['rss_base_mb']:.0f} | {need:,.3g} GiB |")
    if srows:
        print("\n| Sinkhorn mode | n = m | d | iterations | total s | s / iteration | peak RSS MiB |")
        print("|" + "---|" * 7)
        for r in srows:
            if "t" not in r:
                print(f"| {r['solver']} | {r['n']:,} | {r['d']} | – | "
                      f"{r.get('skipped') or r} | | |")
                continue
            print(f"| {r['solver']} | {r['n']:,} | {r['d']} | {r['steps']} | {r['t']:.2f} | "
                  f"{r['t_step']:.3f} | {r['rss_peak_mb']:.0f} |")


# --------------------------------------------------------------------------- unbalanced


def cmd_unbalanced(args) -> None:
    import otkit
    from otkit.data import clouds_with_outliers

    out = OUT / "lowrank_unbalanced.jsonl"
    rows = []
    rho = args.rho
    for n in args.sizes:
        pm = clouds_with_outliers(n, seed=args.seed, dtype=torch.float64)
        x, y, truth, outl = pm.x, pm.y, pm.truth, pm.y_unmatched
        m = y.shape[0]
        a = torch.full((n,), 1.0 / n, dtype=torch.float64)
        b = torch.full((m,), 1.0 / m, dtype=torch.float64)
        runs = [
            (f"lowrank ρ={rho:g}",
             lambda: otkit.lowrank(x, y, a, b, rank=args.rank, rho_a=rho, rho_b=rho,
                                   generator=args.seed)),
            ("lowrank balanced",
             lambda: otkit.lowrank(x, y, a, b, rank=args.rank, generator=args.seed)),
            (f"sinkhorn ε={args.epsilon:g} ρ={rho:g}",
             lambda: otkit.sinkhorn(x.float(), y.float(), a.float(), b.float(),
                                    epsilon=args.epsilon, rho_a=rho, rho_b=rho,
                                    max_iter=args.sinkhorn_max_iter, mode="dense")),
            (f"sinkhorn ε={args.epsilon:g} balanced",
             lambda: otkit.sinkhorn(x.float(), y.float(), a.float(), b.float(),
                                    epsilon=args.epsilon, max_iter=args.sinkhorn_max_iter,
                                    mode="dense")),
        ]
        for name, fn in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                res = fn()
                t = time.perf_counter() - t0
            row_m, col_m = (v.double() for v in res.marginals())
            mass = col_m.sum().item()
            share = (col_m[outl].sum() / col_m.sum()).item()
            # Sinkhorn: the entropic map at the training points, = P y / P1 (row scalings cancel)
            bary = (res.transport(x.float()) if isinstance(res, otkit.SinkhornResult)
                    else res.transport()).double()
            err = (bary - truth).norm(dim=1).mean().item()
            row = dict(n=n, m=m, solver=name, t=t, n_iter=int(res.n_iter),
                       converged=bool(res.converged), mass=mass, outlier_share=share,
                       bary_err=err, cost=float(res.ot_cost()), machine=_machine())
            _append(out, row)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| n (m) | solver | s | iterations | plan mass | outlier mass share | "
          "barycentric error |")
    print("|" + "---|" * 7)
    for r in rows:
        print(f"| {r['n']} ({r['m']}) | {r['solver']} | {r['t']:.2f} | {r['n_iter']}"
              f"{'' if r['converged'] else '*'} | {r['mass']:.3f} | {r['outlier_share']:.4f} | "
              f"{r['bary_err']:.3f} |")


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.lowrank")
    p.add_argument("--threads", type=int, default=1)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pot")
    s.add_argument("--sizes", type=_ints, default=[1000, 4000, 10000])
    s.add_argument("--dims", type=_ints, default=[2, 8])
    s.add_argument("--ranks", type=_ints, default=[5, 20])
    s.add_argument("--emd-max", type=int, default=4000)
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("scale")
    s.add_argument("--sizes", type=_ints, default=[1000, 10000, 100000, 1000000])
    s.add_argument("--dims", type=_ints, default=[2, 32])
    s.add_argument("--rank", type=int, default=10)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--timeout", type=float, default=900)
    s.add_argument("--sinkhorn-sizes", type=_ints, default=[10000, 100000])
    s.add_argument("--sinkhorn-d", type=int, default=2)
    s.add_argument("--sinkhorn-iters", type=int, default=3)
    s.add_argument("--sinkhorn-timeout", type=float, default=600)
    s.add_argument("--dense-max-gb", type=float, default=8.0)
    s = sub.add_parser("_scale_one")
    s.add_argument("--solver", default="lowrank")
    s.add_argument("--n", type=int)
    s.add_argument("--d", type=int)
    s.add_argument("--rank", type=int, default=10)
    s.add_argument("--steps", type=int, default=20)
    s.add_argument("--epsilon", type=float, default=0.5)
    s = sub.add_parser("unbalanced")
    s.add_argument("--sizes", type=_ints, default=[2000, 10000])
    s.add_argument("--rho", type=float, default=9.0,
                   help="KL marginal penalty of both solvers, in cost units (9 = the former "
                        "low-rank tau 0.9)")
    s.add_argument("--rank", type=int, default=10)
    s.add_argument("--epsilon", type=float, default=0.5)
    s.add_argument("--sinkhorn-max-iter", type=int, default=2000)
    s.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"pot": cmd_pot, "scale": cmd_scale, "_scale_one": cmd_scale_one,
     "unbalanced": cmd_unbalanced}[args.cmd](args)


if __name__ == "__main__":
    main()
