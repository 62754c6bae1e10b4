"""Sinkhorn sharded over ``torch.distributed`` (gloo on CPU, NCCL on GPUs).

Zhang, Mousavi-Hosseini, Klein and Cuturi (2025) solve Sinkhorn between millions of points by
sharding the source cloud across devices; :func:`sharded_sinkhorn` does the same with any
process group, with the conventions and results of :func:`otkit.sinkhorn`.

* :mod:`~otkit.distributed.sharded`: the solver and its result;
* :mod:`~otkit.distributed.launch`: :func:`run_local`, several local processes in one group;
* ``python -m otkit.distributed`` (or under ``torchrun``): a demo on seeded clouds.
"""

from .launch import run_local
from .sharded import ShardedSinkhornResult, shard, sharded_sinkhorn

__all__ = ["sharded_sinkhorn", "ShardedSinkhornResult", "shard", "run_local"]
