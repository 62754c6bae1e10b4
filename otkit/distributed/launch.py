"""Run a function in several local processes joined in one ``torch.distributed`` group.

For tests, benchmarks and demos on one machine (gloo on CPU, NCCL with one GPU per process);
on a cluster, launch with ``torchrun`` instead.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

__all__ = ["run_local"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _local_worker(
    rank: int,
    fn: Callable[..., Any],
    args: tuple,
    world_size: int,
    port: int,
    backend: str,
    timeout: float,
    threads: int,
    out_dir: str,
) -> None:
    """One process of :func:`run_local`: join the group, run ``fn``, save what it returned."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(
        backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout)
    )
    try:
        result = fn(*args)
        torch.save(result, os.path.join(out_dir, f"{rank}.result"))
    except BaseException as err:
        # Saved so that the parent can raise the same exception type (spawn only passes text).
        # An unpicklable error is still reported, as text, by spawn.
        with contextlib.suppress(Exception), open(
            os.path.join(out_dir, f"{rank}.error"), "wb"
        ) as file:
            pickle.dump(err, file)
        raise
    finally:
        dist.destroy_process_group()


def run_local(
    fn: Callable[..., Any],
    *args: Any,
    world_size: int = 2,
    backend: str = "gloo",
    timeout: float = 300.0,
    threads: int | None = None,
    env: dict[str, str] | None = None,
) -> list[Any]:
    """Run ``fn(*args)`` in ``world_size`` fresh processes joined in one process group.

    For tests and benchmarks on one machine: each process is started with
    ``torch.multiprocessing`` (spawn), joins a ``backend`` group on 127.0.0.1 and a free port
    (RANK, WORLD_SIZE, LOCAL_RANK are set as torchrun would), calls ``fn(*args)`` and leaves
    the group. ``fn`` must be picklable (a module-level function) and its return value
    ``torch.save``-able.

    Args:
        fn, args: the function every process runs (it may call ``dist.get_rank()``).
        world_size: the number of processes.
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (rank r on ``cuda:r``).
        timeout: seconds a collective may wait before the group gives up.
        threads: torch threads per process (OMP_NUM_THREADS too); default: the CPU cores
            shared out, at least 1.
        env: extra environment variables for the processes (e.g. ``{"OTKIT_COMPILE": "0"}``).

    Returns:
        What ``fn`` returned on each rank, in rank order.

    Raises:
        The first failing process's exception (same type and message), chained to the
        spawn error that carries its traceback; the other processes are stopped.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    threads = threads or max(1, (os.cpu_count() or 1) // world_size)

    child_env = {"OMP_NUM_THREADS": str(threads), **(env or {})}
    saved = {k: os.environ.get(k) for k in child_env}
    with tempfile.TemporaryDirectory(prefix="otkit-run-local-") as out_dir:
        os.environ.update(child_env)  # inherited by the spawned processes, restored below
        try:
            mp.start_processes(
                _local_worker,
                args=(fn, args, world_size, _free_port(), backend, timeout, threads, out_dir),
                nprocs=world_size,
                join=True,
                start_method="spawn",
            )
        except ProcessException as err:
            path = os.path.join(out_dir, f"{err.error_index}.error")
            if os.path.exists(path):
                with open(path, "rb") as file:
                    original = pickle.load(file)  # written by our own child process
                raise original from err
            raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        return [
            torch.load(os.path.join(out_dir, f"{r}.result"), weights_only=False)
            for r in range(world_size)
        ]
