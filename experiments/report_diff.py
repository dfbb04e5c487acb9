"""Compare two report folders key by key: did a refactor move any public number? (issue 16)

Run: ``.venv/bin/python experiments/report_diff.py BEFORE AFTER [NAME ...]``.

Each ``BEFORE/NAME/report.json`` is compared with ``AFTER/NAME/report.json``
value by value and in key order; what says when or where a run happened
(``created``, ``timing``, ``environment`` and the checkpoint / oracle paths) is
left out.  Every CSV beside the reports is compared byte for byte.  Exit 1
when anything differs, listing each difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Fields that describe the run, not its results.
VOLATILE = {"created", "timing", "environment"}
VOLATILE_PATHS = {("model", "path"), ("oracle", "path")}


def differences(before: Any, after: Any, where: tuple[str, ...] = ()) -> list[str]:
    """Every place where ``after`` differs from ``before`` (values and key order)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys_b = [k for k in before if k not in VOLATILE and (*where, k) not in VOLATILE_PATHS]
        keys_a = [k for k in after if k not in VOLATILE and (*where, k) not in VOLATILE_PATHS]
        if keys_b != keys_a:
            return [f"{'.'.join(where) or '<top>'}: keys {keys_b} != {keys_a}"]
        return [d for k in keys_b for d in differences(before[k], after[k], (*where, k))]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in differences(b, a, (*where, str(i)))
        ]
    if before != after:
        return [f"{'.'.join(where)}: {before!r} != {after!r}"]
    return []


def compare_folder(before: Path, after: Path) -> list[str]:
    found = differences(
        json.loads((before / "report.json").read_text()),
        json.loads((after / "report.json").read_text()),
    )
    names_b = sorted(p.relative_to(before) for p in before.rglob("*.csv"))
    names_a = sorted(p.relative_to(after) for p in after.rglob("*.csv"))
    if names_b != names_a:
        found.append(f"CSV files {names_b} != {names_a}")
    found += [
        f"{name}: bytes differ"
        for name in names_b
        if name in names_a and (before / name).read_bytes() != (after / name).read_bytes()
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("names", nargs="*", help="report folders (default: all in BEFORE)")
    args = parser.parse_args()
    names = args.names or sorted(p.parent.name for p in args.before.glob("*/report.json"))
    failed = False
    for name in names:
        found = compare_folder(args.before / name, args.after / name)
        csvs = len(list((args.before / name).rglob("*.csv")))
        print(
            f"{name}: {'identical' if not found else f'{len(found)} difference(s)'} "
            f"(report.json and {csvs} CSV files)"
        )
        for line in found:
            print(f"  {line}")
        failed |= bool(found)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
