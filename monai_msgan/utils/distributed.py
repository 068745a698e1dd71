# Copyright (c) monai-msgan contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Process-group helpers for ``torchrun``: rank and world size, device per rank, start and end of the group."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "destroy_distributed",
    "distributed_device",
    "gather_to_first",
    "init_distributed",
    "rank_and_world",
    "rank_barrier",
    "unwrap",
]

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group; ``(0, 1)`` without one (a single process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def distributed_device() -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` (modulo the visible GPUs; ``cuda:0`` without torchrun) when
    CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}")
    return torch.device("cpu")


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` set up (environment ``RANK``, ``WORLD_SIZE``, ...), once.

    Args:
        backend: ``"nccl"``, ``"gloo"``, ...; None = nccl with CUDA, gloo on the CPU.

    Returns:
        ``(rank, world_size)``.

    Raises:
        RuntimeError: the process was not started by ``torchrun`` (its environment variables are missing).
    """
    if dist.is_initialized():
        return rank_and_world()
    missing = [v for v in TORCHRUN_VARIABLES if v not in os.environ]
    if missing:
        raise RuntimeError(
            f"the multi-GPU configuration needs torchrun (environment variables {missing} are not set): start it "
            "with `torchrun --nproc_per_node N -m monai.bundle run ...`, or leave the multi_gpu layer out."
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(distributed_device())
    dist.init_process_group(backend=backend)
    return rank_and_world()


def destroy_distributed() -> None:
    """End the process group, if any (a bundle's ``finalize``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def gather_to_first(obj: Any) -> list[Any] | None:
    """Collect one picklable object from every rank: rank 0 gets them in rank order, the others None.

    Without a process group the list holds ``obj`` alone.
    """
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[Any] | None = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (the module itself otherwise)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
