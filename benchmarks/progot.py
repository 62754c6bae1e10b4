"""Check the ProgOT paper's two claims (Kassraie et al. 2024): ``python -m benchmarks.progot``.

Subcommands:

* ``maps``: out-of-sample map error (normalized MSE, :func:`otkit.data.map_error`) of
  ProgOT (K ∈ {2, 4, 8}, α ∈ {lin, quad, exp}, ε default or tuned) against the entropic map
  at the default relative ε 0.05 and at its best relative ε on a grid (an oracle: it uses the
  ground truth). One call of :func:`otkit.progot.study.compare_map_estimators` per
  (problem, d, n, seed); the ground-truth map itself is fixed (``ground_truth_map(name, d,
  seed=0)``), the seed only changes the draw. "best ProgOT" is the config with the lowest mean
  error over seeds, i.e. an oracle choice too; "K=4 lin tuned" is a fixed reference config.
* ``couplings``: at a small final ε, ProgOT with an explicit per-step ε list ending exactly at
  that ε (geometric from ``--eps-start`` × std C(x, y)), same tol and max_iter, against cold
  Sinkhorn at that ε and Sinkhorn with ``epsilon_scaling=q``. Reports total Sinkhorn
  iterations, wall time, convergence failures and the cost ⟨P, C(x, y)⟩ on the original
  clouds relative to exact OT (``otkit.emd``, float64, n ≤ ``--emd-max``) and to cold Sinkhorn.

Results are appended as JSON lines to ``--out`` (default under benchmarks/out/, git-ignored);
``--report FILE`` prints the tables of such a file without running anything.

Threads: ``torch.set_num_threads(--threads)`` (default 1) before anything else; on the shared
2-core machine two OpenMP threads under load made Sinkhorn ~20× slower.

Examples::

    python -m benchmarks.progot maps --quick
    python -m benchmarks.progot maps --sizes 512 --seeds 0,1,2
    python -m benchmarks.progot couplings --sizes 1000,4000 --seeds 0,1,2
    python -m benchmarks.progot maps --report benchmarks/out/progot_maps.jsonl --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

torch.set_num_threads(1)  # overridden by --threads in main()

OUT = Path(__file__).parent / "out"


# --------------------------------------------------------------------------- helpers


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def _strs(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pm(values: list[float], spec: str = ".4f") -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:{spec}}"
    return f"{mean:{spec}} ± {statistics.stdev(values):{spec}}"


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    from otkit.runs.tables import text_table

    return text_table(header, rows)


def _conditions() -> dict:
    return dict(
        threads=torch.get_num_threads(), load=os.getloadavg()[0], torch=torch.__version__,
        python=platform.python_version(), date=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    )


# --------------------------------------------------------------------------- maps


def run_maps(args) -> None:
    from otkit.data import ground_truth_map
    from otkit.progot.study import compare_map_estimators

    for n in args.sizes:
        reduced = n in args.reduced_sizes
        cfg = dict(
            num_steps=tuple(args.reduced_steps if reduced else args.steps),
            alphas=tuple(args.reduced_alphas if reduced else args.alphas),
            epsilon_modes=tuple(args.modes),
            entropic_grid=tuple(args.reduced_grid if reduced else args.grid),
        )
        seeds = args.seeds[:1] if reduced else args.seeds
        for problem in args.problems:
            for d in args.dims:
                truth = ground_truth_map(problem, d, seed=0)
                for seed in seeds:
                    start = time.perf_counter()
                    scores = compare_map_estimators(
                        truth, n, seed=seed, n_test=args.n_test, tol=args.tol,
                        max_iter=args.max_iter, **cfg,
                    )
                    wall = time.perf_counter() - start
                    cond = _conditions()
                    for s in scores:
                        _append(args.out, dict(kind="maps", reduced=reduced, **asdict(s), **cond))
                    best = min((s for s in scores if s.method == "progot"), key=lambda s: s.error)
                    ent = {s.relative_epsilon: s.error for s in scores if s.method == "entropic"}
                    print(
                        f"{problem:8s} d={d:<3d} n={n:<5d} seed={seed} {wall:6.1f}s  entropic "
                        f"0.05: {ent.get(0.05, float('nan')):.4f}  oracle: {min(ent.values()):.4f}"
                        f"  best ProgOT {best.setting}: {best.error:.4f}  (load {cond['load']:.1f})",
                        flush=True,
                    )


def report_maps(rows: list[dict], markdown: bool) -> None:
    from otkit.progot.study import MapScore, oracle_best

    rows = [r for r in rows if r.get("kind") == "maps"]
    fields = MapScore.__dataclass_fields__
    scores = [MapScore(**{k: r[k] for k in fields}) for r in rows]
    cells: dict[tuple, list[MapScore]] = {}
    for s in scores:
        cells.setdefault((s.problem, s.dim, s.n), []).append(s)
    header = ["problem", "d", "n", "seeds", "entropic ε=0.05", "entropic oracle", "oracle ε",
              "best ProgOT", "(config)", "ProgOT K=4 lin tuned", "ProgOT K=4 lin default"]
    table, wins = [], dict(best_vs_default=[0, 0], best_vs_oracle=[0, 0],
                           ref_vs_default=[0, 0], ref_vs_oracle=[0, 0])
    for key in sorted(cells, key=lambda k: (k[0], k[2], k[1])):
        group = cells[key]
        seeds = sorted({s.seed for s in group})
        by_setting: dict[str, list[float]] = {}
        for s in group:
            if s.method == "progot":
                by_setting.setdefault(s.setting, []).append(s.error)
        default = [s.error for s in group if s.method == "entropic" and s.relative_epsilon == 0.05]
        oracle = oracle_best(group)
        oracle_err = [s.error for s in oracle]
        oracle_eps = sorted({s.relative_epsilon for s in oracle})
        best_setting = min(by_setting, key=lambda k: statistics.fmean(by_setting[k]))
        best = by_setting[best_setting]
        ref = by_setting.get("K=4 lin tuned", [])
        ref_def = by_setting.get("K=4 lin default", [])
        table.append([
            key[0], str(key[1]), str(key[2]), str(len(seeds)), _pm(default), _pm(oracle_err),
            ",".join(f"{e:g}" for e in oracle_eps), _pm(best), best_setting, _pm(ref), _pm(ref_def),
        ])
        mean = statistics.fmean
        for name, a, b in (("best_vs_default", best, default), ("best_vs_oracle", best, oracle_err),
                           ("ref_vs_default", ref, default), ("ref_vs_oracle", ref, oracle_err)):
            if a and b:
                wins[name][0 if mean(a) < mean(b) else 1] += 1
    print(_table(header, table, markdown))
    print()
    print(_table(
        ["comparison (mean error per cell)", "ProgOT wins", "entropic wins"],
        [[k.replace("_", " "), str(v[0]), str(v[1])] for k, v in wins.items()], markdown,
    ))


# --------------------------------------------------------------------------- couplings


def coupling_problem(name: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``"softplus8"``: the softplus ground truth in d = 8, x ~ N(0, I), y = T(x') for an
    independent draw x'. ``"mixture2"``: a 2-D 5-component Gaussian mixture to a shifted,
    tighter one (clustered target), from benchmarks.sinkhorn's generator."""
    if name.startswith("softplus"):
        from otkit.data import ground_truth_map

        d = int(name[len("softplus"):])
        gen = torch.Generator().manual_seed(seed)
        return ground_truth_map("softplus", d, seed=0).sample_pair(n, generator=gen)
    if name.startswith("mixture"):
        import numpy as np

        d = int(name[len("mixture"):])
        rng = np.random.default_rng([seed, n, d, 7])

        def mixture(shift: float, spread: tuple[float, float]) -> np.ndarray:
            means = rng.normal(0.0, 2.0, (5, d)) + shift
            scales = rng.uniform(*spread, 5)
            comp = rng.integers(0, 5, n)
            return (means[comp] + scales[comp, None] * rng.normal(size=(n, d))).astype(np.float32)

        return torch.from_numpy(mixture(0.0, (0.3, 1.0))), torch.from_numpy(mixture(0.5, (0.1, 0.3)))
    raise ValueError(f"unknown problem {name!r}")


def _emd_txt(row: dict) -> str:
    return "–" if row["rel_to_emd"] is None else f"{row['rel_to_emd']:+.3%}"


def _geometric(start: float, end: float, k: int) -> list[float]:
    if k == 1:
        return [end]
    return [start * (end / start) ** (i / (k - 1)) for i in range(k)]


def run_couplings(args) -> None:
    from otkit import emd
    from otkit.costs import SqEuclidean
    from otkit.geometry import PointCloud
    from otkit.progot import progot
    from otkit.sinkhorn import ConvergenceWarning, sinkhorn

    # Warm-up (first-call overhead of torch and of each code path) on a small problem.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        wx, wy = coupling_problem(args.problems[0], 200, 0)
        sinkhorn(wx, wy, relative_epsilon=0.05, epsilon_scaling=args.q)
        progot(wx, wy, num_steps=2, alpha="lin", epsilon=[0.5, 0.1])
    for problem in args.problems:
        for n in args.sizes:
            for seed in (args.seeds if n <= args.one_seed_above else args.seeds[:1]):
                x, y = coupling_problem(problem, n, seed)
                mode = "online" if n > args.dense_max else "dense"
                std = PointCloud(x, y, SqEuclidean()).cost_std()
                eps = args.rel_eps * std
                common = dict(tol=args.tol, max_iter=args.max_iter, mode=mode)
                base = dict(kind="couplings", problem=problem, n=n, seed=seed, mode=mode,
                            rel_eps=args.rel_eps, eps=eps, cost_std=std, tol=args.tol,
                            max_iter=args.max_iter)
                exact = None
                if n <= args.emd_max:
                    t0 = time.perf_counter()
                    exact = emd(x.double(), y.double()).ot_cost().item()
                    _append(args.out, dict(base, method="emd", cost=exact, seconds=time.perf_counter() - t0,
                                           iterations=0, converged=True, **_conditions()))
                runs = [("sinkhorn cold", None), (f"sinkhorn scaling q={args.q:g}", None)]
                runs += [(f"progot K={k} lin", k) for k in args.steps]
                cold_cost = None
                for method, k in runs:
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        if k is None:
                            scaling = args.q if "scaling" in method else None
                            fit = sinkhorn(x, y, epsilon=eps, epsilon_scaling=scaling, **common)
                            iters, per_step = fit.n_iter, [fit.n_iter]
                        else:
                            sched = _geometric(args.eps_start * std, eps, k)
                            fit = progot(x, y, num_steps=k, alpha="lin", epsilon=sched, **common)
                            iters, per_step = fit.total_iterations, list(fit.n_iters)
                    seconds = time.perf_counter() - t0
                    cost = fit.ot_cost().item()
                    if cold_cost is None:
                        cold_cost = cost
                    row = dict(
                        base, method=method, iterations=iters, per_step=per_step, seconds=seconds,
                        converged=bool(fit.converged), marginal_error=fit.marginal_error(), cost=cost,
                        rel_to_emd=None if exact is None else cost / exact - 1.0,
                        rel_to_cold=cost / cold_cost - 1.0,
                        final_eps=float(fit.epsilon if k is None else fit.epsilons[-1]),
                        **_conditions(),
                    )
                    _append(args.out, row)
                    print(
                        f"{problem} n={n} seed={seed} {method:24s} iters={iters:<6d} {per_step} "
                        f"{seconds:7.2f}s conv={row['converged']} cost={cost:.6g} vs emd "
                        f"{_emd_txt(row)} "
                        f"vs cold {row['rel_to_cold']:+.3%} (load {row['load']:.1f})",
                        flush=True,
                    )


def report_couplings(rows: list[dict], markdown: bool) -> None:
    rows = [r for r in rows if r.get("kind") == "couplings" and r["method"] != "emd"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["problem"], r["n"], r["method"]), []).append(r)
    header = ["problem", "n", "method", "seeds", "fails", "iterations", "iters per step",
              "seconds", "cost vs exact", "cost vs cold"]
    table = []
    for (problem, n, method), g in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        steps = [statistics.fmean(s) for s in zip(*[r["per_step"] for r in g])]
        emd_rel = [r["rel_to_emd"] * 100 for r in g if r["rel_to_emd"] is not None]
        table.append([
            problem, str(n), method, str(len(g)), str(sum(not r["converged"] for r in g)),
            _pm([r["iterations"] for r in g], ".0f"),
            "/".join(f"{s:.0f}" for s in steps) if len(steps) > 1 else "",
            _pm([r["seconds"] for r in g], ".2f"),
            (_pm(emd_rel, "+.3f") + " %") if emd_rel else "–",
            _pm([r["rel_to_cold"] * 100 for r in g], "+.3f") + " %",
        ])
    print(_table(header, table, markdown))


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.progot", description=__doc__.split("\n")[0])
    p.add_argument("what", choices=("maps", "couplings"))
    p.add_argument("--quick", action="store_true", help="a tiny grid, to check the script runs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--problems", type=_strs, help="maps: gaussian,softplus; couplings: softplus8,mixture2")
    p.add_argument("--dims", type=_ints, default=[2, 8, 32, 64], help="maps: d (default 2,8,32,64)")
    p.add_argument("--sizes", type=_ints, help="n (maps default 512,2048; couplings 1000,4000,10000)")
    p.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="seeds (default 0,1,2)")
    p.add_argument("--steps", type=_ints, help="K values (maps default 2,4,8; couplings 4,8)")
    p.add_argument("--alphas", type=_strs, default=["lin", "quad", "exp"], help="maps: α schedules")
    p.add_argument("--modes", type=_strs, default=["default", "tuned"], help="maps: ε modes")
    p.add_argument("--grid", type=_floats, default=None, help="maps: entropic relative-ε grid")
    p.add_argument("--reduced-sizes", type=_ints, default=[8192],
                   help="maps: sizes run with one seed and the reduced config (default 8192)")
    p.add_argument("--reduced-steps", type=_ints, default=[4])
    p.add_argument("--reduced-alphas", type=_strs, default=["lin", "quad"])
    p.add_argument("--reduced-grid", type=_floats, default=[0.01, 0.02, 0.05, 0.1])
    p.add_argument("--n-test", type=int, default=1000, help="maps: test points (default 1000)")
    p.add_argument("--rel-eps", type=float, default=0.005, help="couplings: final ε / std C (0.005)")
    p.add_argument("--eps-start", type=float, default=0.05, help="couplings: ProgOT's first ε / std C")
    p.add_argument("--q", type=float, default=0.9, help="couplings: epsilon_scaling factor (0.9)")
    p.add_argument("--emd-max", type=int, default=4000, help="couplings: exact OT up to this n")
    p.add_argument("--dense-max", type=int, default=10000, help="couplings: online mode above this n")
    p.add_argument("--one-seed-above", type=int, default=10000, help="couplings: one seed above this n")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--max-iter", type=int, help="maps default 2000, couplings 5000")
    p.add_argument("--out", type=Path, help="JSON lines (appended)")
    p.add_argument("--report", type=Path, help="print the tables of a JSON-lines file; run nothing")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    if args.what == "maps":
        from otkit.progot.study import DEFAULT_ENTROPIC_GRID

        args.problems = args.problems or ["gaussian", "softplus"]
        args.sizes = args.sizes or [512, 2048]
        args.steps = args.steps or [2, 4, 8]
        args.grid = args.grid or list(DEFAULT_ENTROPIC_GRID)
        args.max_iter = args.max_iter or 2000
        if args.quick:
            args.problems, args.dims, args.sizes, args.seeds = ["softplus"], [2], [256], [0, 1]
            args.steps = [2, 4]
    else:
        args.problems = args.problems or ["softplus8", "mixture2"]
        args.sizes = args.sizes or [1000, 4000, 10000]
        args.steps = args.steps or [4, 8]
        args.max_iter = args.max_iter or 5000
        if args.quick:
            args.problems, args.sizes, args.seeds = ["softplus8"], [500], [0]
    args.out = args.out or OUT / f"progot_{args.what}{'_quick' if args.quick else ''}.jsonl"

    if args.report:
        rows = _load(args.report)
        (report_maps if args.what == "maps" else report_couplings)(rows, args.markdown)
        return
    print(f"# {args.what}: threads={torch.get_num_threads()} load={os.getloadavg()[0]:.1f} "
          f"out={args.out}", file=sys.stderr)
    (run_maps if args.what == "maps" else run_couplings)(args)
    rows = _load(args.out)
    (report_maps if args.what == "maps" else report_couplings)(rows, args.markdown)


if __name__ == "__main__":
    main()
