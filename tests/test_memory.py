"""Streaming batches and the allocator trim between them (issue 18)."""

from __future__ import annotations

import platform

import pytest
import torch

from invaudit.attacks.base import Batches
from invaudit.memory import release_freed_memory


@pytest.mark.parametrize(("n", "size"), [(10, 3), (9, 3), (1, 5), (0, 4)])
def test_batches_cover_the_positions_in_order(n: int, size: int) -> None:
    positions = torch.arange(100, 100 + n)
    batches = Batches(positions, size)
    parts = list(batches)
    assert len(batches) == len(parts) == -(-n // size)
    assert all(len(p) == size for p in parts[:-1])
    assert torch.equal(torch.cat(parts) if parts else positions, positions)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_reaches_glibc() -> None:
    assert release_freed_memory() is True
