"""What an invariance audit costs next to a forward pass and next to PGD, measured side by side.

    .venv/bin/python benchmarks/attack_cost.py runs/mnist-ce.pt --n 1000 --data-dir ../shared/data

Prints, for the same model and the same test images, in one run:

* forward throughput (``F(x)``, no grad); metamer *generation* throughput
  (encode every image once, decode one metamer per image: the attack's core);
  and the full ``metamer`` audit's throughput, which adds two verification
  passes (re-encode every metamer to check its logits, decode every clean
  code to measure reconstruction) — each as a ratio to forward;
* the wall time of the ``metamer`` audit and of foolbox's L∞ PGD with 40
  steps, and their ratio.

Each timing is the best of ``--repeats`` runs, interleaved, so that load on
a shared machine hits both sides alike.  Costs grow linearly with ``--n``: the
ratios do not depend on it, the absolute times do.
"""

from __future__ import annotations

import argparse
import time

import torch

from invaudit.attacks import AuditContext, default_oracle, run_attack
from invaudit.attacks.base import encode
from invaudit.attacks.preimage import decode_pairs
from invaudit.data.audit import audit_data
from invaudit.models.checkpoint import load_model


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--n", type=int, default=10_000, help="test images (default: all 10k)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pgd-steps", type=int, default=40)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-pgd", action="store_true")
    args = parser.parse_args()

    model = load_model(args.checkpoint)
    info = model.checkpoint_info["dataset"]
    data = audit_data(info, data_dir=args.data_dir)
    ctx = AuditContext(
        model=model, data=data, oracle=default_oracle(info), n=args.n, batch_size=args.batch_size
    )
    x, _ = ctx.test_examples()

    def forward() -> None:  # the reference: one pass, batched like the audit
        with torch.no_grad():
            for part in ctx.batches(len(x)):
                model(x[part])

    partner = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))

    def generate() -> None:  # the attack's core: the metamer constructor, unchecked
        z_s, z_n = model.split(encode(ctx, model, x))
        decode_pairs(ctx, model, z_s, z_n[partner], check=False)

    def metamer() -> None:
        run_attack("metamer", ctx)

    def pgd() -> None:
        run_attack("pgd-linf", ctx, epsilons=[0.1], steps=args.pgd_steps)

    forward_s = generate_s = metamer_s = pgd_s = float("inf")
    for _ in range(args.repeats):  # interleaved: each side sees the same machine load
        forward_s = min(forward_s, best_of(1, forward))
        generate_s = min(generate_s, best_of(1, generate))
        metamer_s = min(metamer_s, best_of(1, metamer))
        if not args.skip_pgd:
            pgd_s = min(pgd_s, best_of(1, pgd))
    n = len(x)
    threads = torch.get_num_threads()
    print(f"{args.checkpoint}: {model.arch}, n={n}, batch {args.batch_size}, {threads} thread(s)")
    print(f"  forward            {n / forward_s:10.1f} samples/s  ({forward_s:.2f} s)")
    print(f"  metamer generation {n / generate_s:10.1f} samples/s  ({generate_s:.2f} s)")
    print(f"  metamer audit      {n / metamer_s:10.1f} samples/s  ({metamer_s:.2f} s)")
    print(f"  generation / forward {forward_s / generate_s:8.3f}  (throughput ratio)")
    print(f"  audit / forward      {forward_s / metamer_s:8.3f}  (throughput ratio)")
    if not args.skip_pgd:
        print(f"  pgd-linf {args.pgd_steps} steps  {pgd_s:10.2f} s")
        print(f"  metamer / pgd      {metamer_s / pgd_s:10.4f}  (wall-time ratio)")


if __name__ == "__main__":
    main()
