"""Stability study (issue 13): which building blocks keep F⁻¹ tame off the data.

Run: ``.venv/bin/python experiments/stability_study.py --data-dir ../shared/data
[--variants a,b] [--jobs 2] [--limit 20000] [--epochs 2]``.

Each variant is one ``invaudit train`` command line (CE on MNIST, seeded);
the runner trains it (or resumes it), then measures the saved checkpoint
with the toolkit's own audits, never from training logs:

- logit test error on the full 10k MNIST test set (the trainer's evaluation);
- ``invaudit attack --method metamer`` on ``--n`` test pairs with the zoo
  oracle: the share of metamers with no pixel more than 0.1 outside [0, 1],
  the mean of each metamer's largest excursion, the pixel range, how often
  the oracle names the nuisance source and either source;
- the local gain of F⁻¹ at 256 of those metamer points (median, max, and
  the stage whose layers amplify most), by ``invaudit.models.stability``;
- ``invaudit attack --method probe``: a fresh MLP's test error reading y
  from the frozen z_n.

``docs/stability.md`` is rewritten from every finished ``WORK/NAME/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Every variant names all its stability keys, so its command means the same
# whatever firevnet-mnist's defaults are (the study chose today's).
LEGACY = (
    "--set", "input_layer=identity", "--set", "conv1x1=lu", "--set", "actnorm_bound=0",
    "--set", "residual_norm=none", "--set", "batchnorm=true",
)  # fmt: skip
STABLE = (
    "--set", "input_layer=logit", "--set", "residual_norm=spectral", "--set", "batchnorm=false",
    "--set", "conv1x1=orthogonal", "--set", "actnorm_bound=2",
)  # fmt: skip
BOUNDED = (
    "--set", "input_layer=logit", "--set", "conv1x1=orthogonal", "--set", "actnorm_bound=2",
    "--set", "residual_norm=none", "--set", "batchnorm=true",
)  # fmt: skip
NLL1 = ("--nll-weight", "1")
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "legacy": ("the old default: LU 1x1, unbounded actnorm, BatchNorm residuals", LEGACY),
    "legacy-nll1": ("legacy + MLE_n x1 (the likelihood term alone)", (*LEGACY, *NLL1)),
    "logit": ("legacy + logit input layer", (*LEGACY, "--set", "input_layer=logit")),
    "spectral": (
        "legacy + spectrally normalised residuals (no BatchNorm)",
        (*LEGACY, "--set", "residual_norm=spectral", "--set", "batchnorm=false"),
    ),
    "orthogonal": (
        "legacy + orthogonal 1x1 convolutions",
        (*LEGACY, "--set", "conv1x1=orthogonal"),
    ),
    "actnorm2": ("legacy + actnorm log-scale bounded by 2", (*LEGACY, "--set", "actnorm_bound=2")),
    "stable": ("all four blocks (spectral residuals, bound 1)", STABLE),
    "stable-nll0.1": ("all four + MLE_n x0.1", (*STABLE, "--nll-weight", "0.1")),
    "stable-nll1": ("all four + MLE_n x1", (*STABLE, *NLL1)),
    "stable-r3-nll1": (
        "all four, residual bound 3 + MLE_n x1",
        (*STABLE, "--set", "residual_bound=3", *NLL1),
    ),
    "bounded-nll1": (
        "logit input, orthogonal 1x1, actnorm bound 2 (BatchNorm residuals, no spectral "
        "norm) + MLE_n x1: **adopted** as the firevnet-mnist default",
        (*BOUNDED, *NLL1),
    ),
    "bounded-nll0.1": ("as bounded-nll1 with MLE_n x0.1", (*BOUNDED, "--nll-weight", "0.1")),
    "bounded-nll0.3": ("as bounded-nll1 with MLE_n x0.3", (*BOUNDED, "--nll-weight", "0.3")),
    "bounded": ("as bounded-nll1 without the likelihood term", BOUNDED),
    "bounded-nobn-nll1": (
        "as bounded-nll1 without BatchNorm",
        (*BOUNDED, "--set", "batchnorm=false", *NLL1),
    ),
}


def train_argv(name: str, opts: argparse.Namespace, out: Path) -> list[str]:
    return [
        "train", "--dataset", "mnist", "--loss", "ce", "--epochs", str(opts.epochs),
        "--lr", "0.003", "--seed", "0", "--limit", str(opts.limit),
        "--data-dir", opts.data_dir, "--no-download", "--device", "cpu", "--no-progress",
        *VARIANTS[name][1], "--out", str(out),
    ]  # fmt: skip


def invaudit(argv: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("a") as f:
        f.write("$ invaudit " + shlex.join(argv) + "\n")
        f.flush()
        subprocess.run(
            [sys.executable, "-m", "invaudit", *argv], stdout=f, stderr=subprocess.STDOUT,
            env=env, check=True, cwd=REPO,
        )  # fmt: skip


def measure_gain(checkpoint: Path, opts: argparse.Namespace) -> dict:
    """F⁻¹'s local gain at 256 metamer points, paired as the metamer audit pairs them."""
    import torch

    from invaudit.attacks.base import dataset_tensors, pair_other_class
    from invaudit.data.audit import audit_data
    from invaudit.models.checkpoint import load_model
    from invaudit.models.stability import inverse_gain

    torch.set_num_threads(1)
    model = load_model(checkpoint)
    data = audit_data(model.checkpoint_info["dataset"], data_dir=opts.data_dir)
    x, y = dataset_tensors(data.test, 256, 0)
    partner = pair_other_class(y, torch.Generator().manual_seed(1))
    with torch.no_grad():
        z_s, z_n = model.split(model(x))
        z = model.merge(z_s, z_n[partner])
        x_met = model.inverse(z)
    start = time.perf_counter()
    report = inverse_gain(model, z).summary()
    report["seconds"] = time.perf_counter() - start
    report["pixel_min"] = float(x_met.min())
    report["pixel_max"] = float(x_met.max())
    return report


def gain_in_subprocess(checkpoint: Path, folder: Path, opts: argparse.Namespace) -> dict:
    # A process of its own: torch.func's transforms keep global state that two
    # runner threads measuring at once would share.
    out = folder / "gain.json"
    subprocess.run(
        [sys.executable, __file__, "--gain-of", str(checkpoint), "--gain-out", str(out),
         "--data-dir", opts.data_dir],
        check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    return json.loads(out.read_text())


def run_variant(name: str, opts: argparse.Namespace) -> dict:
    folder = opts.work / name
    folder.mkdir(parents=True, exist_ok=True)
    result_path = folder / "result.json"
    if result_path.exists() and not opts.force:
        return json.loads(result_path.read_text())
    log = folder / "log.txt"
    ckpt = folder / "model.pt"
    argv = train_argv(name, opts, ckpt)
    start = time.perf_counter()
    invaudit([*argv, "--resume"] if ckpt.exists() else argv, log)
    train_seconds = time.perf_counter() - start
    common = ["--model", str(ckpt), "--data-dir", opts.data_dir, "--seed", "0", "--no-progress"]
    invaudit(["attack", "--method", "metamer", "--n", str(opts.n), *common,
              "--out", str(folder / "metamer")], log)  # fmt: skip
    invaudit(["attack", "--method", "probe", *common, "--out", str(folder / "probe")], log)
    import torch

    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    metamer = json.loads((folder / "metamer" / "metamer.json").read_text())["metrics"]
    probe = json.loads((folder / "probe" / "probe.json").read_text())["metrics"]
    result = {
        "name": name,
        "what": VARIANTS[name][0],
        "command": "invaudit " + shlex.join(argv[:-2] + ["--out", f"{name}.pt"]),
        "logit_test_error": 1 - payload["metrics"]["logit_test_acc"],
        "train_seconds": train_seconds,
        "metamer": metamer,
        "probe": probe,
        "gain": gain_in_subprocess(ckpt, folder, opts),
    }
    result_path.write_text(json.dumps(result, indent=1))
    return result


ZOO_MODELS = ("mnist-ce-v1", "mnist-ce", "mnist-ice")


def zoo_acceptance(opts: argparse.Namespace) -> None:
    """Issue 13's acceptance figures on the zoo's MNIST models, as a doc section."""
    from invaudit.reports.sanity import report_warnings
    from invaudit.zoo import zoo_entry

    rows = []
    for name in opts.zoo_models.split(","):
        # Keyed by the file's hash: a retrained zoo model must not reuse the old one's audit.
        folder = opts.work / "zoo" / f"{name}-{zoo_entry(name).sha256[:12]}"
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "log.txt"
        out = folder / "metamer"
        if not (out / "metamer.json").exists():
            invaudit(["attack", "--method", "metamer", "--n", str(opts.n), "--model",
                      f"zoo:{name}", "--data-dir", opts.data_dir, "--seed", "0",
                      "--no-progress", "--out", str(out)], log)  # fmt: skip
        metamer = json.loads((out / "metamer.json").read_text())["metrics"]
        gain_file = folder / "gain.json"
        if not gain_file.exists():
            entry = zoo_entry(name)
            gain_in_subprocess(entry.path, folder, opts)
        gain = json.loads(gain_file.read_text())
        flags = [
            w["name"]
            for w in report_warnings(
                {"attacks": {"metamer": {"metrics": metamer, "n": metamer["n"]}},
                 "invertibility": {"metamer_gain": gain}}
            )
            if w["name"] in ("metamers_off_domain", "inverse_exploding")
        ]  # fmt: skip
        card = zoo_entry(name)
        rows.append(
            f"| `zoo:{name}` | {pct(card.metrics['logit_test_error'])} | {metamer['n']} | "
            f"{pct(metamer['near_box_share'])} | {metamer['bounds_excursion_mean']:.4f} | "
            f"[{gain['pixel_min']:.3f}, {gain['pixel_max']:.3f}] | "
            f"{pct(metamer['oracle_names_a_source'])} | "
            f"{pct(metamer['oracle_agrees_nuisance_source'])} | "
            f"{gain['median']:.2f} / {gain['max']:.2f} | {', '.join(flags) or 'none'} |"
        )
    text = "\n".join([
        "## Acceptance on the zoo's MNIST models",
        "",
        f"Made by `.venv/bin/python experiments/stability_study.py --zoo-acceptance "
        f"--data-dir ../shared/data --n {opts.n}`: the metamer audit on {opts.n} test "
        "pairs of the full MNIST test set with the zoo oracle, the gain at 256 of them, "
        "and the report's two stability flags computed from those numbers. Logit error: "
        "the card's (argmax z_s on all 10 000 test images). `mnist-ce-v1` is the zoo's "
        "first CE model, kept for this comparison.",
        "",
        "| model | logit err | metamers | ≤0.1 outside box | mean excursion | pixel range "
        "(256) | oracle: either source | oracle: nuisance source | F⁻¹ gain median / max | "
        "flags |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip
    (opts.work / "acceptance.md").write_text(text)
    print(text)


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


DOC = REPO / "docs" / "stability.md"
FIGURES = ("legacy", "logit", "stable-r3-nll1", "bounded-nll1")


def stored_keys(name: str, opts: argparse.Namespace) -> str:
    """The stability keys the checkpoint was really built with (its stored config)."""
    import torch

    ckpt = opts.work / name / "model.pt"
    config = torch.load(ckpt, map_location="cpu", weights_only=True)["config"]
    keys = ("input_layer", "conv1x1", "actnorm_bound", "residual_norm", "batchnorm")
    return ", ".join(f"{k}={config.get(k, '(legacy)')}" for k in keys)


def train_minutes(name: str, opts: argparse.Namespace) -> float:
    """Training wall time as the checkpoint recorded it (resumed runs add up)."""
    import torch

    ckpt = opts.work / name / "model.pt"
    return torch.load(ckpt, map_location="cpu", weights_only=True)["training"]["wall_seconds"] / 60


def failed_row(name: str, opts: argparse.Namespace) -> str | None:
    """A row for a variant that trained but could not be measured (e.g. it diverged)."""
    import torch

    ckpt = opts.work / name / "model.pt"
    if not ckpt.exists():
        return None
    training = torch.load(ckpt, map_location="cpu", weights_only=True)["training"]
    history = training["history"]
    losses = [h["loss"] for h in history]
    if any(v != v for v in losses):
        why = "diverged: NaN loss"
    elif training["epochs_done"] < training["settings"]["epochs"]:
        return None  # still training (or stopped): no row until it is measured
    else:
        why = "not measured in this session"
    err = 1 - history[-1]["logit_test_acc"]
    return f"| `{name}` | {VARIANTS[name][0]} | {pct(err)} | {why} |" + " |" * 8


def write_doc(opts: argparse.Namespace) -> None:
    import shutil

    rows, commands = [], []
    lines = [
        "| variant | what | logit err | metamers ≤0.1 outside box | mean excursion | "
        "pixel range | oracle: nuisance src | oracle: either src | F⁻¹ gain median / max | "
        "largest stage | probe z_n err | train min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in VARIANTS:
        path = opts.work / name / "result.json"
        cmd = "invaudit " + shlex.join(train_argv(name, opts, Path(f"{name}.pt")))
        cmd = cmd.replace(f" --data-dir {opts.data_dir}", "")
        if not path.exists():
            row = failed_row(name, opts)
            if row:
                lines.append(row)
                commands.append(f"- `{name}`: `{cmd}`")
            continue
        r = json.loads(path.read_text())
        rows.append(r)
        commands.append(f"- `{name}` ({stored_keys(name, opts)}): `{cmd}`")
        m, g = r["metamer"], r["gain"]
        lines.append(
            f"| `{r['name']}` | {VARIANTS[name][0]} | {pct(r['logit_test_error'])} | "
            f"{pct(m['near_box_share'])} | {m['bounds_excursion_mean']:.3f} | "
            f"[{g['pixel_min']:.2f}, {g['pixel_max']:.2f}] | "
            f"{pct(m['oracle_agrees_nuisance_source'])} | {pct(m['oracle_names_a_source'])} | "
            f"{g['median']:.2f} / {g['max']:.2f} | {g.get('largest_stage', '')} | "
            f"{pct(r['probe'].get('nuisance_error'))} | {train_minutes(name, opts):.1f} |"
        )
    table = "\n".join(lines)
    (opts.work / "table.md").write_text(table + "\n")
    print(table)
    if not opts.write_doc:
        return
    figs = DOC.parent / "stability"
    figs.mkdir(exist_ok=True)
    shown = []
    for name in FIGURES:
        src = opts.work / name / "metamer" / "metamer.png"
        if src.exists():
            shutil.copyfile(src, figs / f"metamer-{name}.png")
            shown += [f"**`{name}`**", "", f"![{name} metamers](stability/metamer-{name}.png)", ""]
    acceptance = opts.work / "acceptance.md"
    text = "\n".join([
        HEADER.format(limit=opts.limit, epochs=opts.epochs, n=opts.n),
        table, "", "Each variant's command (its stored stability keys in brackets):", "",
        *commands, "", FINDINGS, "", "## Metamers of four variants (the first 8 pairs)", "",
        *shown,
        acceptance.read_text() if acceptance.exists() else "",
    ])  # fmt: skip
    DOC.write_text(text.rstrip() + "\n")
    print(f"wrote {DOC.relative_to(REPO)}")


HEADER = """# Stable inverses: which blocks keep metamers images (issue 13)

A fiRevNet is an exact bijection, yet its inverse can explode off the data:
the first zoo CE model decoded metamers to pixel values in [−34, 36]
(Behrmann et al., AISTATS 2021, explain why: actnorm and affine scales, 1×1
convolutions and unconstrained residual functions have unbounded inverse
Lipschitz constants, and nothing in CE training bounds them away from the
data).  This study trains firevnet-mnist (CPU default size: 3 stages × 4
steps, 64 hidden channels) with each stability key of the arch and measures
what a user of the audit cares about.

Made by `.venv/bin/python experiments/stability_study.py --data-dir ../shared/data
--write-doc` (CE on {limit} MNIST training images, {epochs} epochs, lr 3e-3,
seed 0, one thread per run, two runs at a time on a shared 2-core machine).
Every number comes from the saved checkpoint:

- **logit err**: argmax z_s on the full 10 000-image test set;
- **metamers**: `invaudit attack --method metamer --n {n}` (test pairs of
  different classes, the zoo oracle on each metamer): the share with no pixel
  more than 0.1 outside [0, 1], the mean over metamers of each one's largest
  excursion, how often the oracle names the nuisance source's class and either
  source's class (noise gets neither);
- **pixel range** and **F⁻¹ gain**: at 256 of those metamer points, the
  largest singular value of the Jacobian of F⁻¹ (`invaudit.models.stability`,
  6 power iterations), median and max, and the stage whose layers amplify most;
- **probe z_n err**: `invaudit attack --method probe` (a fresh MLP on frozen z_n).
"""

FINDINGS = """## What the table shows

- **The likelihood term is what turns metamers into images, and a bounded
  input layer is what keeps them in the box.**  `legacy-nll1` tames the
  inverse by about 5× (gain 2.7 against 12.7) and the oracle recognises a source
  in 58 % of its metamers, but they still leave the box (mean excursion 0.44).
  `logit` alone keeps every metamer inside the box by construction, yet the
  oracle recognises a source in only 22 %: saturated noise, which the
  "either source" column exposes where the box check cannot.
- **Alone, the block changes are small.** Orthogonal 1×1 convolutions halve the
  gain (5.6 against 12.7) and the excursion (2.0 against 4.4), but metamers stay
  noise; bounding actnorm alone changes nothing measurable at this budget (its
  scales never approach the bound).  Their value is in the combination: with
  the likelihood term and the logit input they keep the gain below 10.
- **Together** (`bounded-nll1`: logit input, orthogonal 1×1, actnorm bound 2,
  MLE_n ×1) every metamer is an image in the box, the oracle names the
  nuisance source for most of them (Fig. 4: the nuisances dominate the
  appearance), and the gain stays below the `inverse_exploding` threshold (10).
- **Spectral normalisation costs accuracy at this budget.** Alone it diverged
  (NaN in epoch 2: the unbounded actnorm/LU layers grew to make up for the
  bounded residuals); with the other blocks and a residual bound of 3 it gives
  the tamest inverse and the cleanest metamers, at a logit error several times
  that of the other variants.  It stays available (`residual_norm=spectral`,
  `residual_bound`), not the default.
- **Adopted** as firevnet-mnist's default: `input_layer=logit`,
  `conv1x1=orthogonal`, `actnorm_bound=2` (BatchNorm residuals kept), and the
  zoo's CE model adds `--nll-weight 1`.  Checkpoints saved before these keys
  existed load with their legacy values (`MNIST_LEGACY`).
- **The price is logit accuracy.** The likelihood term costs it at 20k images ×
  2 epochs (7 % against 3 % without it), and at full budget too: the retrained
  `zoo:mnist-ce` (8 epochs, all 60 000 images) errs on 3.6 % of the test set,
  where the first zoo CE model (no likelihood term, legacy blocks) erred on
  0.7 %.  Issue 13's target of ≤ 1.0 % is missed by 2.6 points.  Test accuracy
  stopped improving after epoch 3 (96.9 %, then 95.9–96.6 %) while MLE_n kept
  falling: the density term dominates the objective.
- **A smaller likelihood weight buys little accuracy and loses the images.** At
  20k × 2 epochs, MLE_n ×0.3 and ×0.1 err on 5.3 % and 5.5 % (against 7.3 % at
  ×1), but the oracle recognises a source in only 61 % and 44 % of their
  metamers (93 % at ×1).  Part of the accuracy cost is the blocks themselves:
  orthogonal 1×1 convolutions alone err on 5.3 % against the legacy 3.3 %.
  Spectral residuals with bound 1 diverged without the likelihood term and
  learnt slowly with it (28–38 % error).  Next to try: more epochs at a higher
  learning rate, an LU 1×1 with a bounded condition number instead of an
  orthogonal one, or the likelihood term on the factored-out scales only.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("INVAUDIT_DATA", "../shared/data"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "stability-study")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--doc-only", action="store_true")
    parser.add_argument("--write-doc", action="store_true", help="also rewrite docs/stability.md")
    parser.add_argument(
        "--zoo-acceptance",
        action="store_true",
        help="measure the zoo's MNIST models (issue 13's acceptance)",
    )
    parser.add_argument("--zoo-models", default=",".join(ZOO_MODELS))
    parser.add_argument("--gain-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--gain-out", type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.gain_of:
        opts.gain_out.write_text(json.dumps(measure_gain(opts.gain_of, opts)))
        return
    if opts.zoo_acceptance:
        zoo_acceptance(opts)
        return
    names = [v for v in opts.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if not opts.doc_only:
        with ThreadPoolExecutor(opts.jobs) as pool:
            for name, fut in [(n, pool.submit(run_variant, n, opts)) for n in names]:
                try:
                    fut.result()
                    print(f"{name}: done", flush=True)
                except Exception as err:  # noqa: BLE001 - one variant's failure is its row
                    (opts.work / name / "error.txt").write_text(f"{type(err).__name__}: {err}\n")
                    print(f"{name}: failed ({err}); see {opts.work / name / 'log.txt'}", flush=True)
    write_doc(opts)


if __name__ == "__main__":
    main()
