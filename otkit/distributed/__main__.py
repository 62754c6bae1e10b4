"""``torchrun --nproc_per_node R -m otkit.distributed``: the sharded Sinkhorn demo."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence

import torch
import torch.distributed as dist

from ..sinkhorn import ConvergenceWarning, sinkhorn
from .sharded import shard, sharded_sinkhorn

__all__ = ["main"]


def _demo_clouds(
    n: int, m: int, d: int, seed: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source N(0, I) and a target mixture of 4 Gaussians; identical on every rank (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    centres = 3.0 * torch.randn(4, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 4, (m,), generator=gen)
    y = centres[labels] + 0.5 * torch.randn(m, d, generator=gen, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Demo: solve a seeded problem sharded over the launched processes, print on rank 0.

    Launch with ``torchrun --nproc_per_node R -m otkit.distributed -n 20000 -d 2
    --relative-epsilon 0.01`` (gloo on CPU; NCCL with one GPU per rank when CUDA is
    available), or plainly with ``python -m otkit.distributed`` (one process). ``--check``
    (small n) also solves the whole problem with :func:`otkit.sinkhorn` on rank 0 and
    prints the largest potential difference. Returns the printed numbers (on every rank).
    """
    parser = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node R -m otkit.distributed",
        description="Sharded Sinkhorn demo (otkit.distributed).",
    )
    # Short -n/-m/-d: torchrun's own parser would take --n, --m, --d for abbreviations of its
    # options (--nnodes, --master-addr, ...) and stop with "ambiguous option".
    parser.add_argument("-n", "--num-points", type=int, default=20000, help="source points")
    parser.add_argument("-m", "--num-targets", type=int, default=None, help="default: n")
    parser.add_argument("-d", "--dim", type=int, default=2, help="dimension")
    parser.add_argument("--epsilon", type=float, default=None, help="absolute epsilon")
    parser.add_argument("--relative-epsilon", type=float, default=None, help="x std(C)")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=2000)
    parser.add_argument(
        "--epsilon-scaling", type=float, default=None,
        help="anneal epsilon from std(C) by this factor per iteration (e.g. 0.7)",
    )
    parser.add_argument("--block-size", type=int, default=None)
    parser.add_argument("--mode", choices=("online", "dense"), default="online")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="gloo on CPU even if CUDA exists")
    parser.add_argument(
        "--warmup", action="store_true", help="time a second solve (the first compiles kernels)"
    )
    parser.add_argument("--check", action="store_true", help="compare with otkit.sinkhorn")
    args = parser.parse_args(argv)

    use_cuda = torch.cuda.is_available() and not args.cpu
    device = torch.device("cpu")
    if use_cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = "nccl" if use_cuda else "gloo"
        if "RANK" in os.environ:  # launched by torchrun (or with its variables set)
            dist.init_process_group(backend)
        else:  # a plain `python -m otkit.distributed`: a group of one
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    dtype = getattr(torch, args.dtype)
    x, y = _demo_clouds(
        args.num_points, args.num_targets or args.num_points, args.dim, args.seed, dtype
    )
    x_shard, y = shard(x).to(device), y.to(device)
    options = dict(
        epsilon=args.epsilon, relative_epsilon=args.relative_epsilon, tol=args.tol,
        max_iter=args.max_iter, epsilon_scaling=args.epsilon_scaling,
    )

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dist.barrier()

    if args.warmup:  # one iteration compiles the fused kernels (torch.compile) for these shapes
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sharded_sinkhorn(
                x_shard, y, block_size=args.block_size, mode=args.mode,
                **{**options, "max_iter": 1},
            )
    synchronize()
    start = time.perf_counter()
    res = sharded_sinkhorn(x_shard, y, block_size=args.block_size, mode=args.mode, **options)
    synchronize()
    seconds = time.perf_counter() - start
    f = res.gather_f()
    report = {
        "seconds": seconds, "n_iter": float(res.n_iter), "error": res.errors[-1].item(),
        "epsilon": res.epsilon, "converged": float(res.converged),
    }
    if rank == 0:
        print(
            f"otkit.distributed: {world_size} rank(s), backend {dist.get_backend()}, device "
            f"{device}, n={res.n_total} (shards {list(res.shard_sizes)}), m={y.shape[0]}, "
            f"d={args.dim}, {args.dtype}"
        )
        print(
            f"epsilon={res.epsilon:.4g}  time={seconds:.3f} s  n_iter={res.n_iter}  "
            f"error={report['error']:.3e}  converged={res.converged}"
        )
    if args.check:
        if rank == 0:
            ref = sinkhorn(x.to(device), y, backend="torch", **options)
            report["max_abs_diff_f"] = (f - ref.f).abs().max().item()
            report["max_abs_diff_g"] = (res.g - ref.g).abs().max().item()
            report["reference_n_iter"] = float(ref.n_iter)
            print(
                f"check against otkit.sinkhorn (one process): max |f - f_ref| = "
                f"{report['max_abs_diff_f']:.3e}, max |g - g_ref| = "
                f"{report['max_abs_diff_g']:.3e}, n_iter {ref.n_iter}, epsilon "
                f"{ref.epsilon:.4g}"
            )
        dist.barrier()  # the other ranks wait while rank 0 checks
    if owns_group:
        dist.destroy_process_group()
    return report



if __name__ == "__main__":
    main()
    sys.exit(0)
