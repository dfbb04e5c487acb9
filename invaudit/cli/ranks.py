"""Audits under ``torchrun``: join the process group, and keep helper ranks quiet.

``torchrun --nproc_per_node N -m invaudit report …`` starts N copies of the same
command.  Each checks its input the same way (a bad input fails on every rank
with the same line: rank 0 prints it), audits its block of every sharded attack,
and takes part in rank 0's gathers; rank 0 alone prints, draws and writes.
Outside torchrun (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # torch is imported by the commands, not by ``invaudit --help``
    from ..training.distributed import DistContext

T = TypeVar("T")

#: How long a rank waits at a gather for the others (rank 0 may fit a probe meanwhile).
#: A killed peer is noticed at once through its closed socket, not after this.
GATHER_TIMEOUT = datetime.timedelta(hours=2)


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_helper_rank() -> bool:
    """Whether this process is a rank other than 0 of a torchrun audit (it stays quiet)."""
    return under_torchrun() and os.environ.get("RANK", "0") != "0"


def join_ranks(opts: dict[str, Any]) -> DistContext | None:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA, one GPU per local rank);
    ``opts`` get this rank's device, and a helper rank loses its bars and its stdout.

    None outside torchrun.
    """
    if not under_torchrun():
        return None
    from ..training.distributed import DistContext

    dist = DistContext.setup(opts["device"], timeout=GATHER_TIMEOUT)
    opts["device"] = str(dist.device)
    if not dist.is_main:
        opts["progress"] = False
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    return dist


def rank_zero_first(dist: DistContext | None, prepare: Callable[[], T]) -> T:
    """``prepare()`` on rank 0, then on the others: rank 0 alone downloads or unpacks what
    they then read.  A rank 0 that fails exits, and torchrun stops the waiting ones."""
    if dist is None or not dist.distributed:
        return prepare()
    if dist.is_main:
        done = prepare()
        dist.barrier()
        return done
    dist.barrier()
    return prepare()
