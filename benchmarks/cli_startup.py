"""How long ``invaudit --help`` takes: the median wall time of a few fresh processes.

    .venv/bin/python benchmarks/cli_startup.py            # 7 runs of each command
    .venv/bin/python benchmarks/cli_startup.py --runs 11 --command "attack --help"

Times ``python -m invaudit --help`` and one subcommand's ``--help`` (default:
``report --help``), each started as a new process with this interpreter, and
prints the median, the fastest and the slowest.  The target is a median under
1.5 s (issue 14): help must not wait for torch, foolbox or pandas to import.
Runs alternate between the commands so that load on a shared machine hits
both alike.  ``PYTHONPATH`` passes through, so another checkout can be timed
with the same script.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import time

TARGET_SECONDS = 1.5


def wall_time(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per command (default 7)")
    parser.add_argument(
        "--command",
        default="report --help",
        help="the subcommand line to time besides --help (default: 'report --help')",
    )
    opts = parser.parse_args()
    commands = {
        "invaudit --help": [sys.executable, "-m", "invaudit", "--help"],
        f"invaudit {opts.command}": [sys.executable, "-m", "invaudit", *shlex.split(opts.command)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for args in commands.values():  # one warm-up each: the file cache, .pyc files
        wall_time(args)
    for _ in range(opts.runs):
        for name, args in commands.items():
            times[name].append(wall_time(args))
    print(f"{sys.executable}, {opts.runs} runs each (target: median < {TARGET_SECONDS} s)")
    for name, values in times.items():
        median = statistics.median(values)
        verdict = "ok" if median < TARGET_SECONDS else "TOO SLOW"
        print(
            f"  {name:<28} median {median:.3f} s  (min {min(values):.3f}, "
            f"max {max(values):.3f})  {verdict}"
        )


if __name__ == "__main__":
    main()
