"""torchrun with 2 CPU processes (gloo): identical weights, one checkpoint from rank 0."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from invaudit.models.checkpoint import read_checkpoint

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_ranks_end_with_identical_weights(tmp_path) -> None:
    run = torchrun([str(HERE / "ddp_worker.py"), str(tmp_path)], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("model", "game"):
        for key, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][key]), (part, key)
    # Each rank trained on its own half of the 512 points.
    assert ranks[0]["examples"] == ranks[1]["examples"] == 256
    payload = read_checkpoint(tmp_path / "ckpt.pt")
    assert payload["training"]["world_size"] == 2
    assert payload["training"]["epochs_done"] == 2
    assert torch.equal(
        payload["state_dict"]["flow.layers.0.residual.0.weight"],
        ranks[0]["model"]["flow.layers.0.residual.0.weight"],
    )


def test_the_cli_runs_under_torchrun(tmp_path) -> None:
    args = (
        "-m invaudit train --dataset spheres --dim 6 --n-train 256 --n-test 64 --epochs 1 "
        "--device cpu --set hidden=16 --out c.pt --no-progress"
    ).split()
    run = torchrun(args, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote c.pt") == 1  # only rank 0 reports and writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    assert read_checkpoint(tmp_path / "c.pt")["training"]["world_size"] == 2
