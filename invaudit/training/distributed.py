"""One process or many under ``torchrun``: rank, world size, device and reductions."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    def setup(cls, device: str) -> DistContext:
        """Read torchrun's environment; join the process group (nccl on GPU, gloo on CPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        target = resolve_device(device)
        if world <= 1:
            return cls(0, 1, target)
        rank = int(os.environ["RANK"])
        if target.type == "cuda":
            target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(target)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
        return cls(rank, world, target)

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
