"""Time otkit's Sinkhorn against its peers at equal accuracy: ``python -m benchmarks.sinkhorn``.

Solvers (``--solvers``, comma separated):

* ``otkit-auto``, ``otkit-dense`` (backend="torch", mode="dense"), ``otkit-online``
  (backend="torch", mode="online"), ``otkit-geomloss`` (backend="geomloss"), ``otkit-pot``
  (backend="pot"): :func:`otkit.sinkhorn` with ``epsilon`` (absolute), ``tol``, ``max_iter``.
* ``pot``: ``ot.bregman.sinkhorn_log`` on torch tensors, M = ``ot.dist(x, y)`` = ‖x − y‖²,
  ``reg`` = 2ε, ``stopThr`` = tol/√m (POT stops on the L2 norm of the column-marginal error,
  checked every 10 iterations; ‖e‖₁ ≤ √m ‖e‖₂, so this guarantees an L1 error ≤ tol).
* ``geomloss``: ``SamplesLoss("sinkhorn", p=2, blur=√ε, debias=False, potentials=True,
  backend="tensorized")`` (cost ½‖x − y‖², ε = blur², default scaling 0.5). It has no
  tolerance: its reached error is reported as it is.
* ``keops``: the same GeomLoss call with ``backend="online"`` (KeOps, memory O(n + m)).
* ``ott``: OTT-JAX ``PointCloud(x, y, epsilon=2ε)`` (cost ‖x − y‖², dense) solved by
  ``Sinkhorn(threshold=tol, norm_error=1, max_iterations=max_iter)``, jitted.

Every problem is posed in otkit's units: cost C = ½‖x − y‖², ε = relative ε × std(C) with
std(C) from ``otkit.geometry.PointCloud.cost_std`` (a fixed 2048 × 2048 subsample). Solvers
whose cost is ‖x − y‖² = 2C get 2ε; their potentials are converted back to otkit's
(P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)).

Each (case, solver) runs in a fresh subprocess, which loads the clouds, imports only its own
library, does one warm-up solve on the same shapes (see ``--warmup-iters``) and then the timed
solves (median of ``--repeat``; 1 run when n ≥ 20,000 or once a run exceeded ``--long``
seconds). Timed: from the point clouds to the potentials, cost matrix included. Peak memory
is the subprocess's ``ru_maxrss`` (imports and data included; ``base`` is its value before
the first solve). The parent then measures every answer the same way, in float64, a band of
rows at a time, on the plan built from the returned potentials: the L1 marginal error
max(‖P1 − a‖₁, ‖Pᵀ1 − b‖₁) (the marginal a solver's tolerance bounds; the other one is exact
up to float32 rounding after its last half-step; both are kept in the JSON) and the cost ⟨P, C⟩.

Skipped, with the reason printed: dense solvers whose n×m matrices would exceed
``--max-dense-gb``; cases whose time, projected from the same solver at a smaller n
(× (n/n₀)², iterations assumed equal), exceeds ``--timeout``; solvers whose library is missing
or fails. A subprocess is killed after (1 + repeat) × timeout + 180 s.

Examples::

    python -m benchmarks.sinkhorn --sizes 1000 --dims 2 --eps 0.1
    python -m benchmarks.sinkhorn --sizes 1000,5000 --out benchmarks/out/small.json --markdown
    python -m benchmarks.sinkhorn --report benchmarks/out/small.json --markdown
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

OTKIT = {
    "otkit-auto": ("auto", "auto"),
    "otkit-dense": ("torch", "dense"),
    "otkit-online": ("torch", "online"),
    "otkit-geomloss": ("geomloss", "dense"),
    "otkit-pot": ("pot", "dense"),
}
PEERS = ("pot", "geomloss", "keops", "ott")
ALL_SOLVERS = tuple(OTKIT) + PEERS
# float32 n×m matrices alive at once in each dense solver (cost, transpose, temporaries).
DENSE_COPIES = {
    "otkit-dense": 2, "otkit-geomloss": 4, "otkit-pot": 4, "pot": 4, "geomloss": 3, "ott": 3,
}
BIG_N = 20_000


# --------------------------------------------------------------------------- problems


def clouds(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two 5-component Gaussian mixtures ``[n, d]`` (float32), the second one shifted."""
    rng = np.random.default_rng([seed, n, d])

    def mixture(shift: float) -> np.ndarray:
        means = rng.normal(0.0, 2.0, (5, d)) + shift
        scales = rng.uniform(0.3, 1.0, 5)
        comp = rng.integers(0, 5, n)
        pts = means[comp] + scales[comp, None] * rng.normal(size=(n, d))
        return pts.astype(np.float32)

    return mixture(0.0), mixture(0.5)


def cost_std(x: np.ndarray, y: np.ndarray) -> float:
    """std of otkit's cost matrix ½‖x − y‖², as otkit computes it for relative_epsilon."""
    import torch

    from otkit.costs import get_cost
    from otkit.geometry import PointCloud

    geom = PointCloud(torch.from_numpy(x), torch.from_numpy(y), get_cost("sqeuclidean"))
    return geom.cost_std()


def evaluate(x, y, f, g, eps: float, band_cells: int = 2**22,
             device: str = "cpu") -> tuple[float, float, float]:
    """``(‖P1 − a‖₁, ‖Pᵀ1 − b‖₁, ⟨P, C⟩)`` in float64 for P = a b exp((f ⊕ g − C)/ε), C = ½‖x − y‖².

    A Sinkhorn solver's tolerance bounds one of the two marginal errors (the other is exact up
    to rounding after its last half-step), so the benchmark reports the larger of the two.
    """
    import torch

    X = torch.from_numpy(x).to(device, torch.float64)
    Y = torch.from_numpy(y).to(device, torch.float64)
    offset = 0.5 * (X.mean(0) + Y.mean(0))
    X, Y = X - offset, Y - offset
    n, m = X.shape[0], Y.shape[0]
    hf = torch.from_numpy(np.asarray(f, dtype=np.float64)).to(device) / eps - math.log(n)
    hg = torch.from_numpy(np.asarray(g, dtype=np.float64)).to(device) / eps - math.log(m)
    x2, y2 = 0.5 * (X * X).sum(1), 0.5 * (Y * Y).sum(1)
    row = torch.empty(n, dtype=torch.float64, device=device)
    col = torch.zeros(m, dtype=torch.float64, device=device)
    total = 0.0
    band = max(1, band_cells // m)
    yt = Y.T.contiguous()
    for s in range(0, n, band):
        e = min(n, s + band)
        cost = torch.addmm(y2.unsqueeze(0), X[s:e], yt, alpha=-1.0)
        cost += x2[s:e].unsqueeze(1)
        cost.clamp_(min=0.0)
        plan = cost * (-1.0 / eps)
        plan += hg.unsqueeze(0)
        plan += hf[s:e].unsqueeze(1)
        plan.exp_()
        row[s:e] = plan.sum(1)
        col += plan.sum(0)
        total += torch.dot(plan.view(-1), cost.view(-1)).item()
    return (row - 1.0 / n).abs().sum().item(), (col - 1.0 / m).abs().sum().item(), total


# --------------------------------------------------------------------------- solvers (worker side)


class _Otkit:
    def __init__(self, x, y, spec):
        import torch

        import otkit

        self.torch, self.otkit = torch, otkit
        self.x, self.y = _to_device(torch, spec, x), _to_device(torch, spec, y)
        self.spec = spec
        self.backend, self.mode = OTKIT[spec["solver"]]

    def _run(self, max_iter):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", self.otkit.ConvergenceWarning)
            return self.otkit.sinkhorn(
                self.x, self.y, epsilon=self.spec["eps_abs"], tol=self.spec["tol"],
                max_iter=max_iter, backend=self.backend, mode=self.mode,
            )

    def warmup(self):
        self._run(self.spec["warmup_iters"] or self.spec["max_iter"])

    def solve(self):
        r = self._run(self.spec["max_iter"])
        _synchronize(self.torch, self.spec)
        own = r.errors[-1].item() if r.errors.numel() else float("nan")
        info = {"backend": r.backend, "mode": r.mode, "converged": r.converged, "own_error": own}
        return r.f.cpu().numpy(), r.g.cpu().numpy(), r.n_iter, info


class _Pot:
    def __init__(self, x, y, spec):
        import ot
        import torch

        self.ot, self.torch = ot, torch
        self.x, self.y = _to_device(torch, spec, x), _to_device(torch, spec, y)
        n, m = x.shape[0], y.shape[0]
        self.a = torch.full((n,), 1.0 / n, device=self.x.device)
        self.b = torch.full((m,), 1.0 / m, device=self.x.device)
        self.spec = spec
        self.stop = spec["tol"] / math.sqrt(m)

    def _run(self, max_iter):
        M = self.ot.dist(self.x, self.y)  # ‖x − y‖² = 2C
        _, log = self.ot.bregman.sinkhorn_log(
            self.a, self.b, M, 2.0 * self.spec["eps_abs"], numItermax=max_iter,
            stopThr=self.stop, log=True, warn=False,
        )
        return log

    def warmup(self):
        self._run(self.spec["warmup_iters"] or self.spec["max_iter"])

    def solve(self):
        log = self._run(self.spec["max_iter"])
        _synchronize(self.torch, self.spec)
        eps = self.spec["eps_abs"]
        # POT: P = exp(log u + log v − M/(2ε)) = a b exp((f + g − C)/ε)
        f = eps * (log["log_u"] - self.a.log())
        g = eps * (log["log_v"] - self.b.log())
        n_iter = int(log["niter"]) + 1
        info = {"own_error": float(log["err"][-1]), "stopThr_L2": self.stop}
        return f.cpu().numpy(), g.cpu().numpy(), n_iter, info


class _GeomLoss:
    def __init__(self, x, y, spec):
        import torch
        from geomloss import SamplesLoss

        try:
            from geomloss._legacy.sinkhorn_divergence import (
                epsilon_schedule,
                max_diameter,
            )
        except ImportError:  # pragma: no cover - older layout
            from geomloss.sinkhorn_divergence import epsilon_schedule, max_diameter

        self.torch, self.spec = torch, spec
        self.x, self.y = _to_device(torch, spec, x), _to_device(torch, spec, y)
        n, m = x.shape[0], y.shape[0]
        self.a = torch.full((n,), 1.0 / n, device=self.x.device)
        self.b = torch.full((m,), 1.0 / m, device=self.x.device)
        blur = math.sqrt(spec["eps_abs"])
        backend = "online" if spec["solver"] == "keops" else "tensorized"
        self.loss = SamplesLoss(
            "sinkhorn", p=2, blur=blur, debias=False, potentials=True, backend=backend,
            scaling=0.5,
        )
        diameter = max_diameter(self.x, self.y)
        # one symmetric update per ε of the schedule, then GeomLoss's final extrapolation
        self.n_iter = len(epsilon_schedule(2, diameter, blur, 0.5)) + 1

    def warmup(self):
        self.loss(self.a, self.x, self.b, self.y)

    def solve(self):
        f, g = self.loss(self.a, self.x, self.b, self.y)
        _synchronize(self.torch, self.spec)
        return f.reshape(-1).cpu().numpy(), g.reshape(-1).cpu().numpy(), self.n_iter, {}


class _Ott:
    def __init__(self, x, y, spec):
        import jax
        import jax.numpy as jnp
        from ott.geometry import pointcloud
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn

        self.jax, self.spec = jax, spec
        solver = sinkhorn.Sinkhorn(
            threshold=spec["tol"], norm_error=1, max_iterations=spec["max_iter"]
        )
        eps2 = 2.0 * spec["eps_abs"]  # OTT's cost ‖x − y‖² = 2C

        def run(xs, ys):
            geom = pointcloud.PointCloud(xs, ys, epsilon=eps2)
            out = solver(linear_problem.LinearProblem(geom))
            return out.f, out.g, out.n_iters, out.converged

        # jax places arrays on its default backend: the GPU when the benchmark runs with
        # --device cuda, the CPU otherwise (the driver sets JAX_PLATFORMS=cpu then)
        self.xj, self.yj = jnp.asarray(x), jnp.asarray(y)
        self.platform = self.xj.devices().pop().platform
        t0 = time.perf_counter()
        self.fn = jax.jit(run).lower(self.xj, self.yj).compile()  # ahead-of-time compile
        self.compile_s = time.perf_counter() - t0
        self.n, self.m = x.shape[0], y.shape[0]

    def warmup(self):
        if self.n < BIG_N:  # compiled already; run it once too when cheap
            self.jax.block_until_ready(self.fn(self.xj, self.yj))

    def solve(self):
        f, g, n_iter, conv = self.jax.block_until_ready(self.fn(self.xj, self.yj))
        eps = self.spec["eps_abs"]
        # OTT: P = exp((f' + g' − 2C)/(2ε)) = a b exp((f + g − C)/ε), f = f'/2 − ε log a
        f = np.asarray(f, dtype=np.float64) / 2 + eps * math.log(self.n)
        g = np.asarray(g, dtype=np.float64) / 2 + eps * math.log(self.m)
        info = {"converged": bool(conv), "compile_s": self.compile_s, "platform": self.platform}
        return f, g, int(n_iter), info


def _to_device(torch, spec: dict, array: np.ndarray):
    return torch.from_numpy(array).to(spec.get("device", "cpu"))


def _synchronize(torch, spec: dict) -> None:
    """Wait for the device's queued kernels, so that the timer measures the solve."""
    if spec.get("device", "cpu") == "cuda":
        torch.cuda.synchronize()


def _device_peak_mb(solver: str, spec: dict) -> float | None:
    """Peak device memory of the timed solves (torch's allocator, or XLA's for OTT)."""
    if spec.get("device", "cpu") != "cuda":
        return None
    if solver == "ott":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use", float("nan")) / 2**20
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _versions(solver: str) -> dict:
    out = {}
    for mod in ("torch", "ot", "geomloss", "pykeops", "jax", "ott"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", "?")
    return out


def worker(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    x, y = np.load(spec["x"]), np.load(spec["y"])
    solver = spec["solver"]
    cls = _Otkit if solver in OTKIT else {"pot": _Pot, "geomloss": _GeomLoss, "keops": _GeomLoss,
                                          "ott": _Ott}[solver]
    runner = cls(x, y, spec)
    result: dict = {"base_mb": _maxrss_mb(), "load": os.getloadavg()[0]}
    t0 = time.perf_counter()
    runner.warmup()
    result["warmup_s"] = time.perf_counter() - t0
    times, out = [], None
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(spec["repeat"]):
        t0 = time.perf_counter()
        out = runner.solve()
        times.append(time.perf_counter() - t0)
        if times[-1] > spec["long"]:
            break
    result["peak_mb"] = _maxrss_mb()
    result["device_peak_mb"] = _device_peak_mb(solver, spec)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds per wall second during the timed runs (≈ threads actually running)
    result["cpu_per_wall"] = ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / sum(times)
    f, g, n_iter, info = out
    np.save(spec["f"], np.asarray(f))
    np.save(spec["g"], np.asarray(g))
    try:
        import torch

        result["threads"] = torch.get_num_threads()
    except ImportError:
        pass
    result.update(times=times, n_iter=n_iter, info=info, versions=_versions(solver))
    Path(spec["result"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------- driver


def _dense_skip(solver: str, n: int, m: int, max_gb: float) -> str | None:
    copies = DENSE_COPIES.get(solver)
    if copies is None:
        return None
    gb = copies * n * m * 4 / 1e9
    if gb > max_gb:
        return f"dense: ~{copies} × n×m float32 = {gb:.0f} GB > {max_gb:g} GB"
    return None


def _projection_skip(rows: list[dict], solver: str, n: int, d: int, eps_rel: float,
                     timeout: float, max_iter: int) -> str | None:
    prev = [r for r in rows if r["solver"] == solver and r["d"] == d
            and r["eps_rel"] == eps_rel and r["n"] < n]
    if not prev:
        return None
    last = max(prev, key=lambda r: r["n"])
    if last["status"] != "ok":
        return f"not run at n={last['n']} ({last['status']}: {last.get('reason', '')[:60]})"
    iters = max(1, last.get("n_iter") or 1)
    projected = last["time_s"] * (n / last["n"]) ** 2 * min(max_iter, iters) / iters
    if projected > timeout:
        return (f"projected ≥ {projected:.0f} s from {last['time_s']:.1f} s at n={last['n']} "
                f"(× (n/n₀)², same iterations) > cap {timeout:g} s")
    return None


def run_case(args, tmp: Path, solver: str, n: int, d: int, eps_rel: float, eps_abs: float,
             std: float, xpath: Path, ypath: Path, x, y) -> dict:
    row = {"n": n, "d": d, "eps_rel": eps_rel, "eps_abs": eps_abs, "cost_std": std,
           "solver": solver, "tol": args.tol, "threads_arg": args.threads or "default"}
    big = n >= BIG_N
    repeat = 1 if big else args.repeat
    spec = {
        "solver": solver, "x": str(xpath), "y": str(ypath), "eps_abs": eps_abs, "tol": args.tol,
        "max_iter": args.max_iter, "repeat": repeat, "long": args.long, "device": args.device,
        "warmup_iters": min(args.warmup_iters, 2) if big and args.warmup_iters else args.warmup_iters,
        "f": str(tmp / "f.npy"), "g": str(tmp / "g.npy"),
        "result": str(tmp / "result.json"),
    }
    for key in ("f", "g", "result"):
        Path(spec[key]).unlink(missing_ok=True)
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    env.setdefault("KEOPS_CACHE_FOLDER", "/tmp/otkit-bench-keops")
    if args.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"  # a CUDA jax would otherwise take the GPU
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(args.threads)
        if args.threads == 1:  # XLA's CPU thread pool off
            flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
    deadline = (1 + repeat) * args.timeout + 180
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.sinkhorn", "--worker", str(spec_path)],
            cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True,
            text=True, timeout=deadline,
        )
    except subprocess.TimeoutExpired:
        row.update(status="killed", reason=f"subprocess killed after {deadline:.0f} s (cap)")
        return row
    row["wall_s"] = time.perf_counter() - t0
    if proc.returncode != 0 or not Path(spec["result"]).exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        last = tail[-1] if tail else f"exit status {proc.returncode}"
        row.update(status="error", reason=last[:300])
        return row
    res = json.loads(Path(spec["result"]).read_text())
    f, g = np.load(spec["f"]), np.load(spec["g"])
    row.update(status="ok", time_s=statistics.median(res["times"]), times=res["times"],
               runs=len(res["times"]), n_iter=res["n_iter"], peak_mb=res["peak_mb"],
               base_mb=res["base_mb"], warmup_s=res["warmup_s"], load=res["load"],
               info=res["info"], versions=res["versions"], threads=res.get("threads"),
               cpu_per_wall=res["cpu_per_wall"], device=args.device,
               device_peak_mb=res.get("device_peak_mb"))
    if not (np.isfinite(f).all() and np.isfinite(g).all()):
        row.update(error=float("nan"), cost=float("nan"), reason="non-finite potentials")
        return row
    if args.no_eval:
        row["reason"] = "plan not evaluated (--no-eval)"
        return row
    t1 = time.perf_counter()
    row["row_error"], row["col_error"], row["cost"] = evaluate(x, y, f, g, eps_abs,
                                                               device=args.device)
    row["error"] = max(row["row_error"], row["col_error"])
    row["eval_s"] = time.perf_counter() - t1
    return row


def annotate(rows: list[dict], tol_slack: float) -> None:
    """Add ``reached``, ``ratio`` (time / fastest peer that reached tol) and ``dcost``."""
    cases: dict[tuple, list[dict]] = {}
    for r in rows:
        cases.setdefault((r["n"], r["d"], r["eps_rel"]), []).append(r)
    for group in cases.values():
        ok = [r for r in group if r["status"] == "ok" and math.isfinite(r.get("error", math.nan))]
        for r in ok:
            r["reached"] = r["error"] <= r["tol"] * (1 + tol_slack)
        peers = [r for r in ok if r["solver"] in PEERS and r["reached"]]
        best = min(peers, key=lambda r: r["time_s"]) if peers else None
        conv = [r for r in ok if r["reached"]]
        ref = min(conv, key=lambda r: r["error"]) if conv else None
        best_cpu = min(peers, key=lambda r: _cpu_s(r)) if peers else None
        for r in group:
            r["ratio"] = r["time_s"] / best["time_s"] if best and r in ok else None
            r["ratio_cpu"] = _cpu_s(r) / _cpu_s(best_cpu) if best_cpu and r in ok else None
            r["fastest_peer"] = best["solver"] if best else None
            r["dcost"] = (r["cost"] / ref["cost"] - 1.0) if ref and r in ok else None


def _cpu_s(r: dict) -> float:
    """CPU seconds of the median run: wall time × the CPU share the solver got (contention)."""
    return r["time_s"] * r.get("cpu_per_wall", 1.0)


def _fmt(v, spec: str, none: str = "–") -> str:
    return none if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


COLUMNS = ("n", "d", "ε rel", "ε", "solver", "time s", "runs", "iters", "peak MB", "⟨P,C⟩",
           "Δcost", "L1 err", "tol", "× peer", "CPU s", "× peer CPU", "note")


def table_rows(rows: list[dict]) -> list[list[str]]:
    order = {s: i for i, s in enumerate(ALL_SOLVERS)}
    out = []
    for r in sorted(rows, key=lambda r: (r["n"], r["d"], -r["eps_rel"], order[r["solver"]])):
        note = ""
        if r["status"] != "ok":
            note = f"{r['status'].upper()}: {r.get('reason', '')}"
        else:
            info = r.get("info", {})
            bits = []
            if r["solver"] == "otkit-auto":
                bits.append(f"{info.get('backend')}/{info.get('mode')}")
            if r.get("load") is not None and r["load"] > 2.5:
                bits.append(f"load {r['load']:.1f}")
            if r.get("reason"):
                bits.append(r["reason"])
            if r.get("row_error") is None and r.get("error") is not None:
                bits.append("L1 err = row + col sum")
            note = ", ".join(bits)
        ok = r["status"] == "ok"
        out.append([
            f"{r['n']:,}", str(r["d"]), f"{r['eps_rel']:g}", f"{r['eps_abs']:.4g}", r["solver"],
            _fmt(r.get("time_s"), ".3g") if ok else r["status"],
            _fmt(r.get("runs"), "d"), _fmt(r.get("n_iter"), "d"),
            _fmt(r.get("device_peak_mb") or r.get("peak_mb"), ".0f"), _fmt(r.get("cost"), ".6g"),
            _fmt(None if r.get("dcost") is None else 100 * r["dcost"], "+.3f") + ("%" if r.get("dcost") is not None else ""),
            _fmt(r.get("error"), ".2e"),
            ("yes" if r.get("reached") else "NO") if ok and r.get("error") is not None else "–",
            _fmt(r.get("ratio"), ".2f"),
            _fmt(_cpu_s(r) if ok and r.get("time_s") is not None else None, ".3g"),
            _fmt(r.get("ratio_cpu"), ".2f"), note,
        ])
    return out


def print_table(rows: list[dict], markdown: bool) -> None:
    body = table_rows(rows)
    if markdown:
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "|".join("---" for _ in COLUMNS) + "|")
        for line in body:
            print("| " + " | ".join(c.replace("|", "/") for c in line) + " |")
        return
    widths = [max(len(c), *(len(line[i]) for line in body)) if body else len(c)
              for i, c in enumerate(COLUMNS)]
    widths[-1] = len(COLUMNS[-1])
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
    for line in body:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


def _ints(text: str) -> list[int]:
    return [int(float(t)) for t in text.split(",") if t]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sinkhorn", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=_ints, default=[1000, 5000, 20000, 100000],
                   help="n = m, comma separated (default 1000,5000,20000,100000)")
    p.add_argument("--dims", type=_ints, default=[2, 64], help="d (default 2,64)")
    p.add_argument("--eps", type=_floats, default=[0.1, 0.01],
                   help="relative epsilons (× std of otkit's cost matrix; default 0.1,0.01)")
    p.add_argument("--solvers", default=",".join(ALL_SOLVERS),
                   help=f"comma separated, from {','.join(ALL_SOLVERS)}")
    p.add_argument("--repeat", type=int, default=3, help="timed runs, median (1 when n ≥ 20,000)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="cap on one solve in s: projected-longer cases are skipped (default 300)")
    p.add_argument("--long", type=float, default=30.0,
                   help="no further timed runs after one longer than this (s, default 30)")
    p.add_argument("--tol", type=float, default=1e-3, help="L1 marginal tolerance (default 1e-3)")
    p.add_argument("--tol-slack", type=float, default=0.0,
                   help="count a run as reaching tol when error ≤ tol × (1 + slack) (default 0)")
    p.add_argument("--max-iter", type=int, default=2000, help="iteration cap (default 2000)")
    p.add_argument("--warmup-iters", type=int, default=20,
                   help="warm-up solve capped at this many iterations where the solver takes a "
                        "cap (otkit, POT; at most 2 when n ≥ 20,000); 0 = a full solve (default 20)")
    p.add_argument("--max-dense-gb", type=float, default=8.0,
                   help="skip dense solvers whose n×m matrices exceed this (default 8)")
    p.add_argument("--threads", type=int, default=0,
                   help="threads per solver: OMP/MKL_NUM_THREADS (torch, KeOps) and, for 1, "
                        "XLA's single-threaded CPU mode; 0 = each library's default (all cores)")
    p.add_argument("--no-eval", action="store_true",
                   help="skip measuring error and cost of the returned plans (e.g. truncated runs)")
    p.add_argument("--out", type=Path, help="write all rows as JSON (rewritten after each case)")
    p.add_argument("--append", action="store_true",
                   help="merge with the rows already in --out (same case and solver: replaced)")
    p.add_argument("--report", type=Path, help="print the table of a JSON written by --out; run nothing")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where every solver runs (torch tensors, and OTT-JAX's default backend); "
                        "peak MB is then the device's peak allocation (default cpu)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        worker(args.worker)
        return
    if args.report:
        rows = json.loads(args.report.read_text())["rows"]
        annotate(rows, args.tol_slack)
        print_table(rows, args.markdown)
        return

    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    unknown = [s for s in solvers if s not in ALL_SOLVERS]
    if unknown:
        p.error(f"unknown solvers {unknown}; choose from {', '.join(ALL_SOLVERS)}")

    rows: list[dict] = []
    if args.append and args.out and args.out.exists():
        rows = json.loads(args.out.read_text())["rows"]
    meta = {"machine": platform.platform(), "nproc": os.cpu_count(),
            "python": sys.version.split()[0], "threads": args.threads or "default",
            "device": args.device}
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            p.error("--device cuda: torch sees no CUDA device")
        meta["gpu"] = torch.cuda.get_device_name()

    def save():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))

    def keep(row):
        rows[:] = [r for r in rows if (r["n"], r["d"], r["eps_rel"], r["solver"])
                   != (row["n"], row["d"], row["eps_rel"], row["solver"])]
        rows.append(row)
        save()
        status = (f"{row['time_s']:.3g} s ({row.get('runs')} runs), {row.get('n_iter')} it, "
                  f"peak {row.get('peak_mb', 0):.0f} MB, err {row.get('error', math.nan):.2e}, "
                  f"cost {row.get('cost', math.nan):.6g}" if row["status"] == "ok"
                  else f"{row['status'].upper()}: {row.get('reason')}")
        print(f"[{time.strftime('%H:%M:%S')}] n={row['n']} d={row['d']} eps={row['eps_rel']:g} "
              f"{row['solver']}: {status}", flush=True)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="otkit-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for n in args.sizes:
            for d in args.dims:
                x, y = clouds(n, d)
                xpath, ypath = tmp / "x.npy", tmp / "y.npy"
                np.save(xpath, x)
                np.save(ypath, y)
                std = cost_std(x, y)
                for eps_rel in args.eps:
                    eps_abs = eps_rel * std
                    for solver in solvers:
                        base = {"n": n, "d": d, "eps_rel": eps_rel, "eps_abs": eps_abs,
                                "cost_std": std, "solver": solver, "tol": args.tol}
                        # the (n/n₀)² projection models the CPU; small GPU solves are
                        # overhead-bound and would project far too long
                        reason = _dense_skip(solver, n, n, args.max_dense_gb) or (
                            args.device == "cpu" and _projection_skip(
                                rows, solver, n, d, eps_rel, args.timeout, args.max_iter))
                        if reason:
                            keep({**base, "status": "skipped", "reason": reason})
                            continue
                        keep(run_case(args, tmp, solver, n, d, eps_rel, eps_abs, std, xpath,
                                      ypath, x, y))
    print(f"\nTotal wall time {time.perf_counter() - start:.0f} s. Timing: warm-up solve first "
          "(compilation excluded), then the median of the timed runs.\n")
    annotate(rows, args.tol_slack)
    save()
    print_table(rows, args.markdown)


if __name__ == "__main__":
    main()
