"""Time and memory of one batch of flow-matching pairs versus n: ``python -m benchmarks.flows``.

One training step of Sinkhorn flow matching (:mod:`otkit.flows`; Zhang, Mousavi-Hosseini,
Klein and Cuturi 2025) draws n source and n target points, solves entropic OT between them
and gives every source point one partner sampled from its row of the plan (inverse transform sampling). This
measures what that batch of pairs costs, for each n in ``--sizes``, on 2-D data
(``Sampler("eight_gaussians")`` → ``Sampler("moons")``; with ``--dim d > 2``: N(0, I_d) →
moons ⊕ 0.1·N(0, I_{d−2})), at one relative ε (``--rel-eps``, default 0.01):

* ``dense``: :class:`otkit.flows.SinkhornCoupling` with ``mode="dense"``, one process. It
  stores C and Cᵀ (2·n²·4 bytes in float32); skipped above ``--dense-max-gb``.
* ``online``: the same with ``mode="online"`` (C streamed in bands, memory O(n·d)).
* ``sharded ×2``: :func:`otkit.distributed.sharded_sinkhorn` (online) and
  ``sample_pairs_shard`` in 2 gloo processes started by :func:`otkit.distributed.run_local`:
  each rank holds half the source points and all the targets, and ends with the pairs of its
  own half (what a data-parallel training step uses; nothing is gathered). Timed inside the
  workers, after a warm-up solve and a barrier; the reported time is the max over ranks.
* ``sharded ×1``: the same code in 1 process, so that ×1/×2 is the speed-up of sharding
  alone (``online``/×2 also counts the two implementations' differences).
* ``exact``: :class:`otkit.flows.ExactCoupling` (POT's network simplex, float64) for
  n ≤ ``--emd-max``; ``independent``: :class:`otkit.flows.IndependentCoupling` (no solve).

**Fixed budget** (the main table): tol 1e-12 and ``max_iter = --iters`` (quick 5, full 50),
so that every Sinkhorn run does exactly that many iterations (the ConvergenceWarning is
caught) and per-iteration costs compare fairly. No ε-scaling there (``epsilon_scaling=None``:
``sharded_sinkhorn`` has none) and no entropy pass (``track_entropy=False``). "solve" is
the solver call (ε from std(C) included), "sample" the row-sampling pass (``sample_columns``
or ``sample_pairs_shard``), s / iteration = solve s / iterations. This is exactly what
``SinkhornCoupling.pair`` does (solve, then ``sample_columns`` on every row), timed in two
parts. **Default tol** (the second table, at ``--tol-sizes``): ``SinkhornCoupling``'s own
defaults (tol 1e-2, ε-scaling 0.7, entropy tracked, timed by ``Pairing.seconds``) for dense
and online, and ``sharded_sinkhorn`` at the same tol 1e-2 without ε-scaling: the realistic
cost of a batch.

Every single-process method runs in one fresh subprocess, its sizes in order: for each n,
draw the batch, one warm-up solve at that n (1 iteration, no sampling: torch.compile
compiles the fused passes on first use), then the timed call. **Memory** is measured
afterwards, in a separate pass over the same jobs (it would slow the timed calls): glibc's
mmap threshold is pinned at 64 KiB (``mallopt``), so every block ≥ 64 KiB is mapped fresh
and unmapped when freed; then, per job, after ``malloc_trim`` and a reset of the peak RSS
(``/proc/self/clear_refs``), a call with ``MEMORY_ITERS`` = 2 iterations (every iteration
allocates the same buffers; sampling and, at default tol, the entropy pass included). The
reported number is that call's peak RSS minus the RSS just before it: every buffer the call
holds at once (C, bands, sampling temporaries, the result), not the inputs, torch or the
compiler; small-allocation noise is a few MiB. The sharded runs do the same per rank (the
largest rank is reported; each rank also holds the whole target and its shard). On CUDA
(``--device cuda``) it is ``torch.cuda.max_memory_allocated`` above the allocation before.

Threads: ``torch.set_num_threads(--threads)`` (default 1) in every process, so that the 2
sharded processes use 2 cores where the single-process runs use 1.

When CUDA is available (or with ``--scan``, on the CPU) it also doubles n from
``--scan-start`` for each mode of ``--scan-modes`` until out of memory, ``--scan-max-n``, or a
run longer than ``--scan-time-cap`` seconds, and reports the largest n that ran
(``--scan-iters`` iterations each).

Results go as JSON lines to ``benchmarks/out/flows[_quick].jsonl`` (git-ignored, appended);
``--report FILE`` prints the tables of such a file without running anything.

Examples::

    python -m benchmarks.flows --quick
    python -m benchmarks.flows                          # n up to 65,536, 50 iterations
    python -m benchmarks.flows --sizes 4096 --dim 16 --iters 20
    python -m benchmarks.flows --report benchmarks/out/flows_quick.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Self

import torch

torch.set_num_threads(1)  # overridden by --threads in main()

OUT = Path(__file__).parent / "out"
TIGHT_TOL = 1e-12  # never reached: the fixed-budget runs do exactly max_iter iterations
MEMORY_ITERS = 2  # iterations of the memory pass: every buffer of an iteration, allocated twice


# --------------------------------------------------------------------------- helpers


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def _strs(text: str) -> list[str]:
    return [v for v in text.split(",") if v]


def _append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def _machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s)")


def _fmt(v, spec=".3g") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def _draw(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and target batches ``[n, d]`` (float32, CPU), the same in every process."""
    from otkit.flows import Sampler

    gen = torch.Generator().manual_seed(seed)
    if d == 2:
        return Sampler("eight_gaussians")(n, gen), Sampler("moons")(n, gen)
    x0 = torch.randn(n, d, generator=gen)
    x1 = torch.cat([Sampler("moons")(n, gen), 0.1 * torch.randn(n, d - 2, generator=gen)], 1)
    return x0, x1


def _status_mib() -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of this process in MiB (empty off Linux)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def _trim() -> None:
    """Give free heap pages back to the OS (glibc ``malloc_trim``; nothing elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _pin_mmap_threshold() -> bool:
    """From now on every block ≥ 64 KiB is its own mapping, unmapped when freed (glibc).

    Freed buffers then leave the resident set at once, so a buffer of the measured call
    cannot hide in heap memory that an earlier call left behind, and each shows up in the
    peak. Not used while timing: fresh mappings cost page faults (1.5-2× slower here).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        pinned = libc.mallopt(-3, 65536) == 1  # M_MMAP_THRESHOLD
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return pinned


class _Peak:
    """Peak memory growth of a block: RSS on the CPU (VmHWM reset), allocator on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = self.peak = None

    def __enter__(self) -> Self:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        _trim()  # free heap pages leave the resident set: reusing them counts again
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
            self.base = _status_mib().get("VmRSS")
        except OSError:
            self.base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self.base is not None:
            self.peak = _status_mib().get("VmHWM")

    @property
    def growth(self) -> float | None:
        return None if self.base is None or self.peak is None else self.peak - self.base


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _nxn_gib(method: str, n: int) -> float | None:
    """What the method stores of size n × n, GiB: dense C and Cᵀ (float32); exact C and plan
    (float64, POT's copies not counted); None for the streaming methods."""
    return {"dense": 2 * 4 * n * n / 2**30, "exact": 2 * 8 * n * n / 2**30}.get(method)


# --------------------------------------------------------------------------- single process


def _time_sinkhorn(coupling, x0, x1, gen, device) -> dict:
    """Solve, then sample one partner per row, as ``SinkhornCoupling.pair`` (timed apart)."""
    _sync(device)
    t0 = time.perf_counter()
    res = coupling.solve(x0, x1)
    _sync(device)
    t1 = time.perf_counter()
    j = res.sample_columns(torch.arange(x0.shape[0], device=device), gen)
    pairs = (x0, x1[j])
    _sync(device)
    t2 = time.perf_counter()
    del pairs
    return dict(seconds=t2 - t0, solve_s=t1 - t0, sample_s=t2 - t1, n_iter=int(res.n_iter),
                converged=bool(res.converged), epsilon=float(res.epsilon))


def _is_oom(err: BaseException) -> bool:
    text = str(err).lower()  # CUDA: "out of memory"; CPU: "can't allocate memory"
    return isinstance(err, (torch.OutOfMemoryError, MemoryError)) or \
        "out of memory" in text or "can't allocate memory" in text


def _one_job(method: str, budget: str, n: int, args, device: torch.device,
             memory: bool = False) -> dict:
    """One pairing: a warm-up solve (1 iteration) and the timed call; or (``memory``, once
    the timed jobs are done) the call again with ``MEMORY_ITERS`` iterations under
    :class:`_Peak` (a Sinkhorn iteration allocates the same buffers every time; sampling and
    the entropy pass included); exact and independent pairings repeat the same call."""
    from otkit.flows import ExactCoupling, IndependentCoupling, SinkhornCoupling

    x0, x1 = (t.to(device) for t in _draw(n, args.dim, args.seed))
    gen = torch.Generator(device=device).manual_seed(args.seed + 1)
    row: dict = dict(method=method, n=n, budget=budget)
    sinkhorn = method in ("dense", "online")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sinkhorn and budget in ("fixed", "scan"):
            kw = dict(relative_epsilon=args.rel_eps, tol=TIGHT_TOL, mode=method,
                      epsilon_scaling=None, track_entropy=False)
            if not memory:  # warm-up (compiles); the memory pass runs after, in this process
                SinkhornCoupling(max_iter=1, **kw).solve(x0, x1)
            timed = SinkhornCoupling(max_iter=MEMORY_ITERS if memory else args.iters, **kw)
            if memory:
                with _Peak(device) as peak:
                    _time_sinkhorn(timed, x0, x1, gen, device)
            else:
                row.update(_time_sinkhorn(timed, x0, x1, gen, device))
        else:
            if sinkhorn:  # default tol: the coupling's own defaults
                coupling = SinkhornCoupling(relative_epsilon=args.rel_eps, mode=method)
                if not memory:  # warm-up
                    SinkhornCoupling(relative_epsilon=args.rel_eps, mode=method,
                                     max_iter=1).solve(x0, x1)
                else:
                    coupling = SinkhornCoupling(relative_epsilon=args.rel_eps, mode=method,
                                                max_iter=MEMORY_ITERS)
                row.update(tol=coupling.tol, epsilon_scaling=coupling.epsilon_scaling)
            else:
                coupling = {"exact": ExactCoupling, "independent": IndependentCoupling}[method]()
                if not memory:  # warm-up (imports POT) on a small batch
                    coupling.pair(x0[:64], x1[:64], generator=gen)
            if memory:
                with _Peak(device) as peak:
                    coupling.pair(x0, x1, generator=gen)
            else:
                pairing = coupling.pair(x0, x1, generator=gen)
                row.update(seconds=pairing.seconds, n_iter=pairing.n_iter,
                           converged=pairing.converged, epsilon=pairing.epsilon,
                           entropy=pairing.renormalized_entropy)
    if memory:
        return dict(mem_mib=peak.growth, mem_base_mib=peak.base)
    row.update(d=args.dim, device=str(device), load=os.getloadavg()[0],
               threads=torch.get_num_threads())
    return row


def _oom_guard(fn, *fargs, **fkw) -> dict:
    try:
        return fn(*fargs, **fkw)
    except (RuntimeError, MemoryError) as err:
        if not _is_oom(err):
            raise
        return dict(skipped="out of memory")


def cmd_one(args) -> None:
    """Runs in a fresh subprocess: one method at every (budget, n) of ``--jobs``, in order;
    then the memory pass of each (after :func:`_pin_mmap_threshold`, which would slow the
    timed calls). Prints one JSON line per job."""
    device = torch.device(args.device)
    rows = []
    for budget, n in json.loads(args.jobs):
        row = dict(method=args.method, n=n, budget=budget, device=str(device))
        row.update(_oom_guard(_one_job, args.method, budget, n, args, device))
        rows.append(row)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if "skipped" in row:
            break
    pinned = device.type == "cpu" and _pin_mmap_threshold()
    for row in rows:
        if "skipped" not in row:
            row.update(_oom_guard(_one_job, args.method, row["budget"], row["n"], args, device,
                                  memory=True))
            row["mem_pinned"] = pinned
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        print(json.dumps(row), flush=True)


def _sub(method: str, jobs: list, args, iters: int | None = None,
         device: str | None = None) -> list[dict]:
    """Run ``jobs`` (``[budget, n]`` pairs) of one method in a fresh subprocess."""
    cmd = [sys.executable, "-m", "benchmarks.flows", "_one", "--method", method, "--jobs",
           json.dumps(jobs), "--iters", str(iters or args.iters), "--dim", str(args.dim),
           "--rel-eps", str(args.rel_eps), "--seed", str(args.seed), "--device",
           device or args.device,
           "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=args.timeout, env=env)
        stdout, err = proc.stdout, f"failed (exit {proc.returncode})"
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, proc = f"timeout {args.timeout:g} s", None
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    done = {(r["budget"], r["n"]) for r in rows}
    for budget, n in jobs:
        if (budget, n) not in done:
            row = dict(method=method, n=n, budget=budget, skipped=err)
            if proc is not None:
                row["stderr"] = proc.stderr[-800:]
            rows.append(row)
            err = "not run (an earlier job failed)"
    return rows


# --------------------------------------------------------------------------- sharded


def _sharded_worker(jobs: list, d: int, rel_eps: float, seed: int, device_type: str) -> list:
    """One rank (inside run_local): for each ``(budget, n, tol, max_iter)`` a warm-up solve,
    a barrier, then the timed solve + sampling of this rank's shard; then every job's memory
    pass (``MEMORY_ITERS`` iterations, as in :func:`cmd_one`)."""
    import torch.distributed as dist

    from otkit.distributed import shard, sharded_sinkhorn

    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", rank) if device_type == "cuda" else torch.device("cpu")

    def one(n: int, tol: float, max_iter: int, peak: _Peak | None = None) -> dict:
        x0, x1 = _draw(n, d, seed)
        x_shard, y = shard(x0).to(device), x1.to(device)
        gen = torch.Generator(device=device).manual_seed(seed + 1 + rank)
        options = dict(relative_epsilon=rel_eps, tol=tol, mode="online")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sharded_sinkhorn(x_shard, y, max_iter=1, **options)  # warm-up: compiles, same shapes
            dist.barrier()
            with peak or contextlib.nullcontext():
                t0 = time.perf_counter()
                res = sharded_sinkhorn(x_shard, y, max_iter=max_iter, **options)
                _sync(device)
                t1 = time.perf_counter()
                i, j = res.sample_pairs_shard(gen)
                pairs = (x_shard[i], y[j])
                _sync(device)
                t2 = time.perf_counter()
                del pairs
        return dict(n_shard=int(x_shard.shape[0]), seconds=t2 - t0, solve_s=t1 - t0,
                    sample_s=t2 - t1, n_iter=int(res.n_iter), converged=bool(res.converged),
                    epsilon=float(res.epsilon))

    rows = []
    for budget, n, tol, max_iter in jobs:
        row = dict(budget=budget, n=n, rank=rank, world_size=world,
                   threads=torch.get_num_threads(), load=os.getloadavg()[0])
        row.update(one(n, tol, max_iter))
        rows.append(row)
        gc.collect()
    pinned = device.type == "cpu" and _pin_mmap_threshold()
    for row in rows:
        peak = _Peak(device)
        one(row["n"], TIGHT_TOL, MEMORY_ITERS, peak)
        row.update(mem_mib=peak.growth, mem_base_mib=peak.base, mem_pinned=pinned)
        gc.collect()
    return rows


def _sharded(args, world_size: int, jobs: list) -> list[dict]:
    """The sharded pairings of ``jobs`` on ``world_size`` local processes; per job the slowest
    rank's time and the largest rank's memory."""
    from torch.multiprocessing.spawn import ProcessException

    from otkit.distributed import run_local

    # Pickled by its importable name (not as __main__'s) so the spawned workers can load it.
    worker = importlib.import_module("benchmarks.flows")._sharded_worker
    method = f"sharded ×{world_size}"
    backend = "gloo"
    if args.device == "cuda":
        if torch.cuda.device_count() < world_size:
            return [dict(method=method, budget=b, n=n, skipped=f"needs {world_size} GPUs")
                    for b, n, _, _ in jobs]
        backend = "nccl"
    try:
        ranks = run_local(worker, jobs, args.dim, args.rel_eps, args.seed, args.device,
                          world_size=world_size, backend=backend, timeout=args.timeout,
                          threads=args.threads)
    except (RuntimeError, ValueError, ArithmeticError, OSError, ProcessException) as err:
        why = f"failed: {type(err).__name__}: {str(err)[:300]}"
        return [dict(method=method, budget=b, n=n, skipped=why) for b, n, _, _ in jobs]
    rows = []
    for k, (budget, n, tol, _) in enumerate(jobs):
        per_rank = [r[k] for r in ranks]
        slowest = max(per_rank, key=lambda r: r["seconds"])
        mems = [r["mem_mib"] for r in per_rank if r["mem_mib"] is not None]
        rows.append(dict(
            method=method, budget=budget, n=n, seconds=slowest["seconds"],
            solve_s=max(r["solve_s"] for r in per_rank),
            sample_s=max(r["sample_s"] for r in per_rank), n_iter=slowest["n_iter"],
            converged=slowest["converged"], epsilon=slowest["epsilon"],
            mem_mib=max(mems) if mems else None, mem_pinned=slowest.get("mem_pinned"),
            load=slowest["load"],
            threads=slowest["threads"], tol=tol, epsilon_scaling=None, ranks=per_rank))
    return rows


# --------------------------------------------------------------------------- scan


def cmd_scan(args, out: Path) -> list[dict]:
    """Double n per mode until OOM, ``--scan-max-n`` or ``--scan-time-cap``: the largest n.

    Each n runs in a fresh subprocess (an out-of-memory error is caught there)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for mode in args.scan_modes:
        n, largest, why = args.scan_start, None, f"reached --scan-max-n {args.scan_max_n:,}"
        while n <= args.scan_max_n:
            (row,) = _sub(mode, [["scan", n]], args, iters=args.scan_iters, device=device)
            row.update(kind="scan", machine=_machine())
            _append(out, row)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "stderr"}), flush=True)
            if "skipped" in row:
                why = f"{row['skipped']} at n = {n:,}"
                break
            largest = n
            if row["seconds"] > args.scan_time_cap:
                why = f"a run took {row['seconds']:.3g} s > --scan-time-cap {args.scan_time_cap:g}"
                break
            n *= 2
        summary = dict(kind="scan_summary", method=mode, device=device, largest_n=largest,
                       stopped=why, machine=_machine())
        _append(out, summary)
        rows.append(summary)
        print(json.dumps(summary), flush=True)
    return rows


# --------------------------------------------------------------------------- tables

ORDER = ("independent", "exact", "dense", "online", "sharded ×1", "sharded ×2")


def _ok(r) -> bool:
    return r is not None and "seconds" in r


def _s_per_it(r) -> float | None:
    if not _ok(r) or not r.get("n_iter") or "solve_s" not in r:
        return None
    return r["solve_s"] / r["n_iter"]


def _div(num: float | None, den: float | None) -> str:
    return "–" if num is None or not den else f"{num / den:.2f}"


def _medians(rows, method, n) -> dict:
    """Medians over repeated runs of (method, n): total s, s / iteration, memory."""
    ok = [r for r in rows if r.get("method") == method and r.get("n") == n and _ok(r)]

    def med(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    return dict(runs=len(ok), seconds=med([r["seconds"] for r in ok]),
                it=med([_s_per_it(r) for r in ok]), mem=med([r.get("mem_mib") for r in ok]))


def _sorted(rows):
    return sorted(rows, key=lambda r: (r["n"], ORDER.index(r["method"])
                                       if r["method"] in ORDER else len(ORDER)))


def _print_tables(rows) -> None:
    fixed = _sorted([r for r in rows if r.get("kind") == "fixed"])
    if fixed:
        iters = max((r.get("n_iter") or 0) for r in fixed)
        print(f"\n### Fixed budget: {iters} iterations (tol {TIGHT_TOL:g}), no ε-scaling\n")
        print("| n | pairing | iterations | total s | solve s | sample s | s / iteration | "
              "peak memory growth MiB | n×n storage GiB | load |")
        print("|" + "---|" * 10)
        for r in fixed:
            if not _ok(r):
                print(f"| {r['n']:,} | {r['method']} | – | {r.get('skipped', 'failed')} "
                      f"| | | | | {_fmt(_nxn_gib(r['method'], r['n']), '.3g')} | |")
                continue
            it = r.get("n_iter") or 0
            print(f"| {r['n']:,} | {r['method']} | {it if it else '–'} | {r['seconds']:.3f} | "
                  f"{_fmt(r.get('solve_s'), '.3f')} | {_fmt(r.get('sample_s'), '.3f')} | "
                  f"{_fmt(_s_per_it(r), '.4f')} | {_fmt(r.get('mem_mib'), '.0f')} | "
                  f"{_fmt(_nxn_gib(r['method'], r['n']), '.3g')} | {_fmt(r.get('load'), '.1f')} |")
        print("\n| n | online / dense: total s | s / iteration | memory | "
              "speed-up sharded ×1 / ×2: total s | s / iteration | "
              "online / sharded ×2: total s | s / iteration | runs |")
        print("|" + "---|" * 9)
        for n in sorted({r["n"] for r in fixed}):
            med = {m: _medians(fixed, m, n) for m in ("dense", "online", "sharded ×1",
                                                     "sharded ×2")}
            d, o, s1, s2 = (med[m] for m in ("dense", "online", "sharded ×1", "sharded ×2"))
            runs = max(v["runs"] for v in med.values())
            if sum(v["runs"] > 0 for v in med.values()) < 2:
                continue  # nothing to compare at this n
            print(f"| {n:,} | {_div(o['seconds'], d['seconds'])} | {_div(o['it'], d['it'])} | "
                  f"{_div(o['mem'], d['mem'])} | {_div(s1['seconds'], s2['seconds'])} | "
                  f"{_div(s1['it'], s2['it'])} | {_div(o['seconds'], s2['seconds'])} | "
                  f"{_div(o['it'], s2['it'])} | {max(1, runs)}"
                  f"{' (medians)' if runs > 1 else ''} |")
    tol = _sorted([r for r in rows if r.get("kind") == "tol"])
    if tol:
        print("\n### Default tolerance (SinkhornCoupling defaults; sharded: same tol, no "
              "ε-scaling)\n")
        print("| n | pairing | tol | ε-scaling | iterations | converged | total s | "
              "s / iteration (all in) | peak memory growth MiB | renormalized entropy | load |")
        print("|" + "---|" * 11)
        for r in tol:
            if not _ok(r):
                print(f"| {r['n']:,} | {r['method']} | | | – | {r.get('skipped', 'failed')} "
                      "| | | | | |")
                continue
            print(f"| {r['n']:,} | {r['method']} | {_fmt(r.get('tol'), 'g')} | "
                  f"{_fmt(r.get('epsilon_scaling'), 'g')} | {r['n_iter']} | "
                  f"{'yes' if r['converged'] else 'no'} | {r['seconds']:.3f} | "
                  f"{_fmt(r['seconds'] / r['n_iter'] if r['n_iter'] else None, '.4f')} | "
                  f"{_fmt(r.get('mem_mib'), '.0f')} | {_fmt(r.get('entropy'), '.3f')} | "
                  f"{_fmt(r.get('load'), '.1f')} |")
    scan = [r for r in rows if r.get("kind") in ("scan", "scan_summary")]
    if scan:
        print("\n### Largest n per mode (doubling n)\n")
        print("| mode | device | n | iterations | total s | s / iteration | "
              "peak memory growth MiB |")
        print("|" + "---|" * 7)
        for r in scan:
            if r["kind"] == "scan_summary":
                print(f"| **{r['method']}** | {r['device']} | **largest n: "
                      f"{_fmt(r['largest_n'], ',')}** ({r['stopped']}) | | | | |")
            elif _ok(r):
                print(f"| {r['method']} | {r['device']} | {r['n']:,} | {r['n_iter']} | "
                      f"{r['seconds']:.3f} | {_fmt(_s_per_it(r), '.4f')} | "
                      f"{_fmt(r.get('mem_mib'), '.0f')} |")
            else:
                print(f"| {r['method']} | {r.get('device', '')} | {r['n']:,} | – | "
                      f"{r['skipped']} | | |")


# --------------------------------------------------------------------------- main


def cmd_run(args) -> None:
    out = args.out or OUT / f"flows{'_quick' if args.quick else ''}.jsonl"
    print(f"# flows: {_machine()}, load {os.getloadavg()[0]:.2f}, sizes {args.sizes}, d "
          f"{args.dim}, relative ε {args.rel_eps:g}, {args.iters} iterations; rows → {out}",
          flush=True)
    rows: list[dict] = []

    def record(new: list[dict]) -> None:
        for row in new:
            row.update(kind=row["budget"], d=args.dim, rel_eps=args.rel_eps,
                       iters_budget=args.iters, machine=_machine())
            _append(out, row)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("ranks", "stderr")}),
                  flush=True)
            if "stderr" in row:
                print(row["stderr"], file=sys.stderr)

    for method in args.methods:
        sizes = [n for n in args.sizes if method != "exact" or n <= args.emd_max]
        tol_sizes = args.tol_sizes if method in args.tol_methods else []
        if method == "dense":
            too_big = [n for n in sizes if _nxn_gib("dense", n) > args.dense_max_gb]
            record([dict(method=method, n=n, budget="fixed",
                         skipped=f"C and Cᵀ need {_nxn_gib('dense', n):.1f} GiB > "
                         f"--dense-max-gb {args.dense_max_gb:g}") for n in too_big])
            sizes = [n for n in sizes if n not in too_big]
            tol_sizes = [n for n in tol_sizes if _nxn_gib("dense", n) <= args.dense_max_gb]
        if method in ("independent", "exact", "dense", "online"):
            jobs = [["fixed", n] for n in sizes] + [["tol", n] for n in tol_sizes]
            if jobs:
                record(_sub(method, jobs, args))
        elif method in ("sharded1", "sharded2"):
            jobs = ([["fixed", n, TIGHT_TOL, args.iters] for n in sizes]
                    + [["tol", n, args.sharded_tol, args.sharded_max_iter] for n in tol_sizes])
            if jobs:
                record(_sharded(args, int(method[-1]), jobs))
        else:
            raise SystemExit(f"unknown method {method!r}")
    if args.scan or (torch.cuda.is_available() and not args.no_scan):
        rows += cmd_scan(args, out)
    _print_tables(rows)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["_one"]:
        p = argparse.ArgumentParser(prog="python -m benchmarks.flows _one")
        p.add_argument("--method", required=True)
        p.add_argument("--jobs", required=True, help='JSON list of [budget, n]')
        p.add_argument("--iters", type=int, default=50)
        p.add_argument("--dim", type=int, default=2)
        p.add_argument("--rel-eps", type=float, default=0.01)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="cpu")
        p.add_argument("--threads", type=int, default=1)
        args = p.parse_args(argv[1:])
        torch.set_num_threads(args.threads)
        cmd_one(args)
        return
    p = argparse.ArgumentParser(prog="python -m benchmarks.flows",
                                description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="n = 1024,4096,16384, 5 iterations, default tol at n = 4096 "
                   "(3-4 min on 2 idle cores)")
    p.add_argument("--sizes", type=_ints, help="n (default 1024,4096,16384,65536)")
    p.add_argument("--dim", type=int, default=2, help="d (2: 8 Gaussians → moons)")
    p.add_argument("--rel-eps", type=float, default=0.01, help="relative ε (default 0.01)")
    p.add_argument("--iters", type=int, help="fixed iteration budget (default 50, quick 5)")
    p.add_argument("--methods", type=_strs,
                   default=["independent", "exact", "dense", "online", "sharded1", "sharded2"],
                   help="independent,exact,dense,online,sharded1,sharded2 (all by default)")
    p.add_argument("--tol-sizes", type=_ints, help="n of the default-tol rows "
                   "(default 4096,16384; quick 4096; '' for none)")
    p.add_argument("--tol-methods", type=_strs, default=["dense", "online", "sharded2"])
    p.add_argument("--sharded-tol", type=float, default=1e-2,
                   help="tol of the sharded default-tol row (SinkhornCoupling's: 1e-2)")
    p.add_argument("--sharded-max-iter", type=int, default=2000)
    p.add_argument("--emd-max", type=int, default=4096, help="exact pairing up to this n")
    p.add_argument("--dense-max-gb", type=float, default=8.0,
                   help="skip dense when C and Cᵀ (2·n²·4 B) exceed this (default 8)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="single-process rows on this device; sharded: gloo on CPU, or NCCL "
                   "with one GPU per rank")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (1)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scan", action="store_true", help="run the doubling scan even without CUDA")
    p.add_argument("--no-scan", action="store_true", help="skip the scan on CUDA")
    p.add_argument("--scan-modes", type=_strs, default=["online", "dense"])
    p.add_argument("--scan-start", type=int, default=16384)
    p.add_argument("--scan-max-n", type=int, default=2**22)
    p.add_argument("--scan-iters", type=int, default=5)
    p.add_argument("--scan-time-cap", type=float, default=120.0)
    p.add_argument("--out", type=Path, help="JSON lines (appended)")
    p.add_argument("--report", type=Path, help="print the tables of a JSON-lines file; run nothing")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.report:
        _print_tables([json.loads(line) for line in args.report.read_text().splitlines() if line])
        return
    if args.sizes is None:
        args.sizes = [1024, 4096, 16384] if args.quick else [1024, 4096, 16384, 65536]
    if args.iters is None:
        args.iters = 5 if args.quick else 50
    if args.tol_sizes is None:
        args.tol_sizes = [4096] if args.quick else [4096, 16384]
    cmd_run(args)


if __name__ == "__main__":
    main()
