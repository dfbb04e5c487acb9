"""Audits at scale (issue 18): peak memory against --n, and 2 processes against 1.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/audit_scale.py --work runs/audit-scale

Writes a synthetic ImageFolder tree (64×64 RGB PNGs, 10 classes; ``val/`` holds
the largest ``--sizes`` entry, ``train/`` 20 per class), trains a tiny
``firevnet-imagenet`` on it for one epoch, then measures, in one run:

* **Peak RSS** of one process that runs ``invaudit attack --method metamer`` and
  then ``--method pgd-linf`` on the first n and on the largest n of ``--sizes``
  (each pair in a fresh interpreter; ``ru_maxrss`` at its end).  Streaming audits
  keep records, not images, so the ratio should stay near 1 (the issue asks ≤ 1.3);
  holding the inputs would add n × 3 × 64 × 64 × 4 bytes (983 MB at 20 000).
* **Throughput**: the same two attacks on ``--throughput-n`` examples in one process
  and under ``torchrun --nproc_per_node 2`` (gloo), each process one thread; the
  attacks' own seconds (rank 0's, which include waiting for the other rank) and the
  wall time with start-up, side by side, as ratios 1-process / 2-process.

The tree and checkpoint are kept in ``--work`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

CLASSES = 10
SIZE = 64
TRAIN_PER_CLASS = 20
#: One cheap ε and a few steps: the benchmark measures the audit's plumbing, not PGD.
PGD = ["--epsilons", "0.01", "--option", "steps=5"]

_PEAK = """
import resource, sys
from invaudit.cli import main
for args in {runs!r}:
    try:
        main(args, standalone_mode=False)
    except SystemExit as err:
        if err.code:
            raise
print("PEAK_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_tree(root: Path, val_count: int) -> None:
    """``root/{train,val}/cK/i.png``: noise tinted by the class (class K brightens a
    channel and a band of rows), so a one-epoch model learns something."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split, count in (("train", TRAIN_PER_CLASS * CLASSES), ("val", val_count)):
        folder = root / split
        have = sum(1 for _ in folder.rglob("*.png")) if folder.exists() else 0
        if have == count:
            continue
        for k in range(count):
            c = k % CLASSES
            pixels = 0.5 * torch.rand(SIZE, SIZE, 3, generator=gen)
            pixels[..., c % 3] += 0.3
            pixels[6 * c : 6 * c + 6] += 0.2
            path = folder / f"c{c}" / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((pixels.clamp(0, 1) * 255).to(torch.uint8).numpy()).save(path)


def invaudit(*args: str) -> list[str]:
    return [sys.executable, "-m", "invaudit", *args]


def train(tree: Path, ckpt: Path) -> None:
    if ckpt.exists():
        return
    subprocess.run(invaudit(
        "train", "--dataset", "imagenet", "--image-size", str(SIZE), "--set", "stages=2",
        "--set", "blocks=1", "--set", "hidden=16", "--epochs", "1", "--batch-size", "32",
        "--device", "cpu", "--data-dir", str(tree), "--no-progress", "--out", str(ckpt),
    ), check=True)  # fmt: skip


def attack_args(ckpt: Path, method: str, n: int, out: Path, batch_size: int) -> list[str]:
    extra = PGD if method == "pgd-linf" else []
    return [
        "attack", "--model", str(ckpt), "--method", method, "--n-examples", str(n),
        "--oracle", "none", "--batch-size", str(batch_size), "--no-progress",
        "--out", str(out), *extra,
    ]  # fmt: skip


def peak_rss(ckpt: Path, n: int, work: Path, batch_size: int) -> float:
    """Peak RSS (MiB) of one interpreter running metamer then pgd-linf on n examples."""
    runs = [
        attack_args(ckpt, m, n, work / f"rss-{n}-{m}", batch_size) for m in ("metamer", "pgd-linf")
    ]
    out = subprocess.run(
        [sys.executable, "-c", _PEAK.format(runs=runs)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    line = next(x for x in out.stdout.splitlines() if x.startswith("PEAK_KIB"))
    return int(line.split()[1]) / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(ckpt: Path, n: int, work: Path, batch_size: int, procs: int) -> tuple[float, float]:
    """``(attack seconds, wall seconds)`` of metamer + pgd-linf on ``procs`` processes."""
    attack_seconds = wall = 0.0
    for method in ("metamer", "pgd-linf"):
        out = work / f"speed-{procs}-{method}"
        args = attack_args(ckpt, method, n, out, batch_size)
        if procs == 1:
            cmd = invaudit(*args)
        else:
            cmd = [
                sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                "-m", "invaudit", *args,
            ]  # fmt: skip
        tick = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall += time.perf_counter() - tick
        attack_seconds += json.loads((out / f"{method}.json").read_text())["seconds"]
    return attack_seconds, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/audit-scale"))
    parser.add_argument("--sizes", type=int, nargs=2, default=[2000, 20000])
    parser.add_argument("--throughput-n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    opts = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    work = opts.work.resolve()
    tree, ckpt = work / "tree", work / "tiny-64.pt"
    write_tree(tree, max(opts.sizes))
    train(tree, ckpt)
    print(f"tree {tree}: {max(opts.sizes)} val images {SIZE}x{SIZE}; model {ckpt}")
    if not opts.skip_rss:
        small, large = (peak_rss(ckpt, n, work, opts.batch_size) for n in opts.sizes)
        print(
            f"peak RSS metamer + pgd-linf: n={opts.sizes[0]} {small:.0f} MiB, "
            f"n={opts.sizes[1]} {large:.0f} MiB, ratio {large / small:.3f} (target <= 1.3)"
        )
    if not opts.skip_throughput:
        n = opts.throughput_n
        one = timed(ckpt, n, work, opts.batch_size, 1)
        two = timed(ckpt, n, work, opts.batch_size, 2)
        print(
            f"throughput n={n}, metamer + pgd-linf: attacks {one[0]:.1f} s on 1 process, "
            f"{two[0]:.1f} s on 2: ratio {one[0] / two[0]:.2f}; wall with start-up "
            f"{one[1]:.1f} s vs {two[1]:.1f} s: ratio {one[1] / two[1]:.2f} (expect >= 1.6)"
        )


if __name__ == "__main__":
    main()
