"""Audits under torchrun (2 CPU processes, gloo): the same report as one process.

Every rank audits its block of each sharded attack and rank 0 gathers the records,
so the metrics must not depend on the number of processes nor on the batch size:
counts exactly, floats to 1e-6.  A rank killed mid-run makes the run fail and
leaves no report.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from test_distributed import free_port

from invaudit.attacks import ATTACKS
from invaudit.cli import main

N = 48
SPHERES = [
    "train", "--dataset", "spheres", "--dim", "6", "--n-train", "1000", "--n-test", "200",
    "--device", "cpu", "--set", "hidden=16", "--batch-size", "32", "--epochs", "1",
    "--no-progress",
]  # fmt: skip


def torchrun_cmd(args: list[str], nproc: int = 2) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "invaudit",
        *args,
    ]  # fmt: skip


def torchrun_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "spheres.pt"
    result = CliRunner().invoke(main, [*SPHERES, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def report_args(ckpt: Path, out: Path, batch_size: int) -> list[str]:
    return [
        "report", "--model", str(ckpt), "--out", str(out), "--n-examples", str(N),
        "--suite", "quick", "--batch-size", str(batch_size), "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reports(ckpt, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    one = CliRunner().invoke(main, report_args(ckpt, root / "one", 16))
    assert one.exit_code == 0, one.output
    run = subprocess.run(
        torchrun_cmd(report_args(ckpt, root / "two", 7)),
        cwd=root, env=torchrun_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote ") == 1, run.stdout  # rank 0 alone prints and writes
    return {"one": root / "one", "two": root / "two"}


def assert_same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for k, (u, v) in enumerate(zip(a, b, strict=True)):
            assert_same(u, v, f"{where}[{k}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6, (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_two_processes_and_another_batch_size_give_the_same_metrics(reports) -> None:
    one, two = (json.loads((reports[k] / "report.json").read_text()) for k in ("one", "two"))
    assert one["environment"]["processes"] == 1 and two["environment"]["processes"] == 2
    assert one["attacks"].keys() == two["attacks"].keys()
    sharded = [m for m in one["attacks"] if ATTACKS[m].summarise is not None]
    assert {"metamer", "interpolate", "pgd-linf", "pgd-l2"} <= set(sharded), sharded
    for method in one["attacks"]:
        assert_same(one["attacks"][method]["metrics"], two["attacks"][method]["metrics"], method)
        assert_same(
            one["attacks"][method]["intervals"], two["attacks"][method]["intervals"], method
        )
    assert_same(one["model"]["clean_accuracy"], two["model"]["clean_accuracy"], "accuracy")


def test_the_gathered_records_are_every_position_in_order(reports) -> None:
    for method in ("metamer", "pgd-linf"):
        one = pd.read_csv(reports["one"] / f"{method}.csv")
        two = pd.read_csv(reports["two"] / f"{method}.csv")
        assert list(two["index"]) == list(range(N))
        pd.testing.assert_frame_equal(one, two, check_exact=False, atol=1e-6, rtol=0)


def _rank_pid(launcher: int, rank: int) -> int | None:
    """The pid of torchrun's worker ``rank`` (a child of ``launcher``), from /proc."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher and f"RANK={rank}".encode() in env:
            return int(proc.name)
    return None


def _cpu_seconds(pid: int) -> float:
    """CPU seconds ``pid`` has used (-1 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return -1.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_killed_rank_fails_the_run_with_one_line_and_no_report(ckpt, tmp_path) -> None:
    out = tmp_path / "killed"
    args = [
        "attack", "--model", str(ckpt), "--method", "pgd-linf", "--n-examples", "200",
        "--option", "steps=4000", "--batch-size", "50", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    launcher = subprocess.Popen(
        torchrun_cmd(args), cwd=tmp_path, env=torchrun_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        pid = None
        # Kill rank 1 once it has worked a while (past imports and set-up: inside PGD).
        while time.monotonic() < deadline and launcher.poll() is None:
            pid = pid or _rank_pid(launcher.pid, 1)
            if pid is not None and _cpu_seconds(pid) > 8:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        killed = pid is not None and launcher.poll() is None
        _, stderr = launcher.communicate(timeout=120)
        assert killed, f"rank 1 never got going: {stderr[-3000:]}"
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    ours = [line for line in stderr.splitlines() if line.startswith("invaudit: ")]
    assert len(ours) == 1, stderr[-3000:]
    # torchrun prints its own summary (and its own traceback); invaudit's code none.
    frames = [line for line in stderr.splitlines() if 'File "' in line and "invaudit/" in line]
    assert not frames, stderr[-3000:]
    assert "invaudit: stopped by SIGTERM" in ours[0] or "another process" in ours[0]
    assert not out.exists() or not any(out.iterdir())
