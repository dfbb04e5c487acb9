"""One process or many under ``torchrun``: rank, world size, device and reductions."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..devices import resolve_device


@dataclass
class DistContext:
    """Where this process runs and how it talks to the others (if any)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def setup(cls, device: str, timeout: datetime.timedelta | None = None) -> DistContext:
        """Read torchrun's environment; join the process group (nccl on GPU, gloo on CPU)
        with ``timeout`` for its collectives (None: torch's default)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        target = resolve_device(device)
        if world <= 1:
            return cls(0, 1, target)
        rank = int(os.environ["RANK"])
        if target.type == "cuda":
            target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(target)
        if not dist.is_initialized():
            backend = "nccl" if target.type == "cuda" else "gloo"
            if timeout is None:
                dist.init_process_group(backend)
            else:
                dist.init_process_group(backend, timeout=timeout)
        return cls(rank, world, target)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any] | None:
        """Every process's ``obj`` on rank 0, in rank order (None on the other ranks).

        Pickled by torch.distributed between our own processes only; with nccl the
        objects travel through this process's CUDA device (set in :meth:`setup`).
        """
        if not self.distributed:
            return [obj]
        parts: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, parts, dst=0)
        return parts

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
