"""report.html in a real browser: every figure the report lists decodes and shows.

The HTML is meant to open offline, years later, from a mail or a CI artifact,
so its figures are inline ``data:`` PNGs and it holds no scripts and no links.
Here headless Chromium loads a copy with a small probe script added and counts
the images that decoded (``complete && naturalWidth > 0``); a broken data URI,
a wrong MIME type or a truncated PNG shows as LOADED < TOTAL.

Skipped without a Chromium/Chrome binary; the MNIST half also without the
shared MNIST files.  Both checkpoints are untrained tiny fiRevNets: what is
rendered matters here, not how good the model is.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from invaudit.attacks import ATTACKS, Budget
from invaudit.cli import main
from invaudit.data.splits import load_splits
from invaudit.models import build
from invaudit.models.checkpoint import model_payload, save_checkpoint

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for path in map(shutil.which, BROWSERS) if path), None)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HAS_MNIST = (SHARED_DATA / "MNIST" / "raw").is_dir()

pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium / chrome binary on PATH")

PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var div = document.createElement("div");
  div.id = "img-check";
  div.textContent = loaded.length + "/" + images.length;
  document.body.appendChild(div);
});
</script>
"""
CHECK = re.compile(r'<div id="img-check">(\d+)/(\d+)</div>')


@pytest.fixture(scope="module")
def small_probe_training():
    """The quick suite's probes fit on 10 000 training images (seconds of CPU per report);
    1 000 draw the same figures."""
    with pytest.MonkeyPatch.context() as mp:
        for name, attack in ATTACKS.items():  # each attack declares its quick budget
            quick = attack.suites.get("quick")
            if quick is not None and "train_n" in quick.options:
                smaller = Budget(quick.n, {**quick.options, "train_n": 1_000})
                suites = {**attack.suites, "quick": smaller}
                mp.setitem(ATTACKS, name, replace(attack, suites=suites))
        yield


def checkpoint(path: Path, model: torch.nn.Module, dataset: dict[str, Any]) -> Path:
    payload = model_payload(model)
    payload.update(loss="ce", dataset=dataset)
    save_checkpoint(path, payload)
    return path


def write_report(model: Path, out: Path, *args: str) -> dict[str, Any]:
    cmd = ["report", "--model", str(model), "--out", str(out), "--no-progress", *args]
    result = CliRunner().invoke(main, cmd)
    assert result.exit_code == 0, result.output
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def spheres_report(tmp_path_factory, small_probe_training) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("spheres")
    info = load_splits("spheres", dim=6, n_train=1000, n_test=200).info
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-fc", dim=6, hidden=16, blocks=2)
    ckpt = checkpoint(root / "spheres.pt", model, info)
    return root / "report", write_report(ckpt, root / "report", "--n", "40")


@pytest.fixture(scope="module")
def mnist_report(tmp_path_factory, small_probe_training) -> tuple[Path, dict[str, Any]]:
    if not HAS_MNIST:
        pytest.skip(f"{SHARED_DATA}/MNIST/raw not present: no MNIST to audit")
    root = tmp_path_factory.mktemp("mnist")
    info = {"name": "mnist", "bounds": (0.0, 1.0), "input_shape": [1, 28, 28], "num_classes": 10}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build("firevnet-mnist", stages=2, blocks=1, hidden=8)
    ckpt = checkpoint(root / "mnist.pt", model, info)
    args = ["--n", "32", "--data-dir", str(SHARED_DATA), "--no-download"]
    return root / "report", write_report(ckpt, root / "report", *args)


def images_shown(html: Path, tmp_path: Path) -> tuple[int, int]:
    """(decoded, total) images of ``html`` as headless Chromium counts them."""
    page = tmp_path / "probe.html"
    text = html.read_text()
    end = text.rindex("</body>")
    page.write_text(text[:end] + PROBE + text[end:])
    cmd = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    found = CHECK.search(done.stdout)
    assert found, f"no probe result (exit {done.returncode}): {done.stderr[-2000:]}"
    return int(found[1]), int(found[2])


def check_report_html(folder: Path, record: dict[str, Any], tmp_path: Path) -> int:
    html = (folder / "report.html").read_text()
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    listed = sum(len(attack["figures"]) for attack in record["attacks"].values())
    loaded, total = images_shown(folder / "report.html", tmp_path)
    assert (loaded, total) == (listed, listed) == (len(sources), len(sources))
    return listed


def test_spheres_report_figures_all_load(spheres_report, tmp_path) -> None:
    folder, record = spheres_report
    listed = check_report_html(folder, record, tmp_path)
    # metamer radii, probe, misaligned, boundary and one curve per ε-attack.
    assert listed >= 7


def test_mnist_report_figures_all_load(mnist_report, tmp_path) -> None:
    folder, record = mnist_report
    listed = check_report_html(folder, record, tmp_path)
    figures = {Path(f).name for a in record["attacks"].values() for f in a["figures"]}
    # The image figures: metamers, the interpolation grid, adversarial examples.
    assert {"metamer.png", "interpolate.png", "pgd-linf-examples.png"} <= figures
    assert listed == len(figures) >= 9


def test_a_broken_figure_is_counted_as_not_loaded(spheres_report, tmp_path) -> None:
    """The probe can fail: a corrupted data URI shows as one image short."""
    folder, _ = spheres_report
    html = (folder / "report.html").read_text()
    start = html.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "broken" / "report.html"
    broken.parent.mkdir()
    broken.write_text(html[:start] + "AAAA" + html[start + 40 :])
    loaded, total = images_shown(broken, tmp_path)
    assert loaded == total - 1
