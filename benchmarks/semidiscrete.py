"""Semidiscrete OT (issue 6): assignment throughput, SGD step time, pairing cost.

``python -m benchmarks.semidiscrete [--quick] [--threads T] [--device cpu|cuda]``

* **Assignment** (the ε = 0 Laguerre cell, argmax_j ⟨x, y_j⟩ − ½‖y_j‖² + g_j) of k queries
  against N targets, N ∈ {10³, 10⁴, 10⁵, 10⁶}, d ∈ {2, 64}: otkit's blockwise MIPS
  (:func:`otkit.semidiscrete.assign`) against a plain torch argmax over the full ``[k, N]``
  score matrix (skipped above ``--full-cap`` bytes) and faiss ``IndexFlatIP`` on augmented
  vectors (keys ``[y_j, g_j − ½‖y_j‖²]``, queries ``[x_i, 1]``; benchmark-only dependency,
  requirements-bench.txt). Reports queries per second, the ratios, and the fraction of
  queries on which each peer picks otkit's target (float32 near-ties may differ).
* **SGD step** of :func:`otkit.semidiscrete` (ε = 0) at batch 128 and 1024.
* **Pairing cost per batch** of n noise points: SD-FM (a MIPS over N = 10⁴ data points)
  against batch OT-FM's Sinkhorn pairing of n noise with n data points at relative ε 0.01
  (:class:`otkit.flows.SinkhornCoupling`) and the exact matching (n ≤ 4,096).

Every timing is the median of ``--repeats`` calls after one warm-up call; torch (and faiss)
use ``--threads`` threads (default 1). Rows go to ``benchmarks/out/semidiscrete.jsonl``.
"""

# ruff: noqa: B023 - every timed lambda runs within the loop iteration that defines it
from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import time
from pathlib import Path

import torch

OUT = Path(__file__).parent / "out"
sd = importlib.import_module("otkit.semidiscrete")


def _timed(fn, device: torch.device, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _faiss(threads: int):
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(threads)
    return faiss


def assignment_rows(sizes, dims, queries, repeats, full_cap, device, threads) -> list[dict]:
    faiss = _faiss(threads)
    rows = []
    for d in dims:
        for n_targets in sizes:
            gen = torch.Generator().manual_seed(n_targets + d)
            y = torch.randn(n_targets, d, generator=gen).to(device)
            g = (0.1 * torch.randn(n_targets, generator=gen)).to(device)
            x = torch.randn(queries, d, generator=gen).to(device)
            bias = g - 0.5 * (y * y).sum(1)
            t_ours, ours = _timed(lambda: sd.assign(x, y, g), device, repeats)
            row = {"N": n_targets, "d": d, "k": queries, "otkit_qps": queries / t_ours}
            if queries * n_targets * 4 <= full_cap:
                t_full, full = _timed(lambda: (x @ y.T + bias).argmax(1), device, repeats)
                row.update(full_qps=queries / t_full, otkit_over_full=t_full / t_ours,
                           full_agrees=(full == ours).double().mean().item())
            else:
                row.update(full_qps=None, otkit_over_full=None, full_agrees=None)
            if faiss is not None and device.type == "cpu":
                keys = torch.cat([y, bias.unsqueeze(1)], 1).numpy()
                index = faiss.IndexFlatIP(d + 1)
                index.add(keys)
                query = torch.cat([x, torch.ones(queries, 1)], 1).numpy()
                t_faiss, (_, found) = _timed(lambda: index.search(query, 1), device, repeats)
                row.update(faiss_qps=queries / t_faiss, otkit_over_faiss=t_faiss / t_ours,
                           faiss_agrees=(torch.from_numpy(found[:, 0]) == ours.cpu()).double().mean().item())
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def sgd_rows(sizes, batches, steps, device) -> list[dict]:
    from otkit.flows import StandardNormal

    rows = []
    for n_targets in sizes:
        y = torch.randn(n_targets, 2, generator=torch.Generator().manual_seed(0)).to(device)
        for batch in batches:
            def run(k):
                start = time.perf_counter()
                sd.semidiscrete(StandardNormal(2), y, steps=k, batch_size=batch,
                                check_every=10**9, chi2_batches=1, chi2_batch_size=2)
                return time.perf_counter() - start
            run(2)
            per_step = (run(steps + 1) - run(1)) / steps
            rows.append({"N": n_targets, "batch": batch, "ms_per_step": 1e3 * per_step})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def pairing_rows(sizes, dims, n_data, repeats, device) -> list[dict]:
    from otkit.costs import SqEuclidean
    from otkit.flows import ExactCoupling, SemidiscreteCoupling, SinkhornCoupling

    rows = []
    for d in dims:
        gen = torch.Generator().manual_seed(d)
        data = torch.randn(n_data, d, generator=gen).to(device) + 1.0
        fit = sd.SemidiscreteResult(
            y=data, b=torch.full((n_data,), 1.0 / n_data, device=device),
            g=torch.zeros(n_data, device=device), g_last=torch.zeros(n_data, device=device),
            epsilon=0.0, cost=SqEuclidean(), losses=torch.zeros(0),
            chi2_steps=torch.zeros(0), chi2=torch.zeros(0), converged=False, n_iter=0,
        )  # the pairing cost does not depend on g's values
        for n in sizes:
            x0 = torch.randn(n, d, generator=gen).to(device)
            x1 = data[torch.randint(n_data, (n,), generator=gen).to(device)]
            row = {"d": d, "n": n, "N": n_data}
            row["sdfm_s"] = _timed(lambda: SemidiscreteCoupling(fit).pair(x0, x1), device, repeats)[0]
            sink = SinkhornCoupling(relative_epsilon=0.01, track_entropy=False)
            row["sinkhorn_s"] = _timed(lambda: sink.pair(x0, x1), device, max(1, repeats // 2))[0]
            row["sinkhorn_over_sdfm"] = row["sinkhorn_s"] / row["sdfm_s"]
            if n <= 4096 and device.type == "cpu":
                row["exact_s"] = _timed(lambda: ExactCoupling().pair(x0, x1), device, 1)[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _table(rows: list[dict], columns: list[str]) -> str:
    from otkit.runs.tables import dict_table

    return dict_table([{c: r.get(c) if r.get(c) is not None else "-" for c in columns} for r in rows],
                      columns, digits=3)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N up to 10^5 (10^6 at d = 2 only)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--queries", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-cap", type=float, default=2e9, help="bytes of the full score matrix")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = OUT / "semidiscrete.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, device {device}, "
          f"torch threads {args.threads}, torch {torch.__version__}", flush=True)

    sizes = [10**3, 10**4, 10**5, 10**6]
    rows = []
    for d in (2, 64):
        use = [s for s in sizes if not (args.quick and d == 64 and s == 10**6)]
        rows += assignment_rows(use, [d], args.queries, args.repeats, args.full_cap, device, args.threads)
    sgd = sgd_rows([10**3, 10**4, 10**5], [128, 1024], 20 if args.quick else 100, device)
    pairs = pairing_rows([256, 4096], [2, 64], 10**4, args.repeats, device)
    with out.open("a") as fh:
        for kind, group in (("assign", rows), ("sgd", sgd), ("pairing", pairs)):
            for row in group:
                fh.write(json.dumps({"kind": kind, "device": str(device), **row}) + "\n")
    print("\nAssignment throughput (queries/s; ratios > 1: otkit faster)")
    print(_table(rows, ["N", "d", "otkit_qps", "full_qps", "faiss_qps", "otkit_over_full",
                        "otkit_over_faiss", "full_agrees", "faiss_agrees"]))
    print("\nSGD step of otkit.semidiscrete (d = 2, epsilon = 0)")
    print(_table(sgd, ["N", "batch", "ms_per_step"]))
    print("\nPairing cost per batch of n noise points (N = 10^4 data points)")
    print(_table(pairs, ["d", "n", "sdfm_s", "sinkhorn_s", "exact_s", "sinkhorn_over_sdfm"]))


if __name__ == "__main__":
    main()
