"""CUDA paths: a training step, an exact inverse and nccl.  Skipped where torch sees no GPU."""

from __future__ import annotations

import pytest
import torch

from invaudit.models import build
from invaudit.training.losses import ICEConfig
from invaudit.training.trainer import Trainer, TrainSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch"),
]


def test_cuda_training_step_and_inverse(tmp_path) -> None:
    settings = TrainSettings(
        dataset="spheres",
        arch="firevnet-fc",
        loss="ice",
        epochs=2,
        device="cuda",
        dim=10,
        n_train=4000,
        n_test=1000,
        lr=1e-3,
        ice=ICEConfig(nuisance_hidden=64),
    )
    trainer = Trainer(settings, tmp_path / "g.pt")
    metrics = trainer.fit()
    assert next(trainer.model.parameters()).is_cuda
    assert metrics["logit_test_acc"] > 0.9
    model = trainer.model.eval()
    x = torch.randn(64, 10, device="cuda")
    with torch.no_grad():
        assert (model.inverse(model(x)) - x).abs().max().item() <= 1e-4


def test_cuda_conv_model_is_exact() -> None:
    model = build("firevnet-mnist").cuda()
    x = torch.rand(32, 1, 28, 28, device="cuda")
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    with torch.no_grad():
        assert (model.inverse(model(x)) - x).abs().max().item() <= 1e-4


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="nccl test needs 2 GPUs")
def test_nccl_two_gpus(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).parent / "ddp_worker.py"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            str(worker),
            str(tmp_path),
            "cuda",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_cuda_attacks_match_the_cpu(tmp_path) -> None:
    """metamer, probe and foolbox PGD on CUDA: the same verdicts as on the CPU."""
    from invaudit.attacks import AuditContext, SpheresOracle, run_attack
    from invaudit.data.audit import audit_data

    settings = TrainSettings(
        dataset="spheres", arch="firevnet-fc", epochs=1, device="cuda", dim=10,
        n_train=4000, n_test=600, lr=1e-3,
    )  # fmt: skip
    trainer = Trainer(settings, tmp_path / "a.pt")
    trainer.fit()
    info = trainer.splits.info
    results = {}
    for device in ("cuda", "cpu"):
        model = trainer.model.to(device=device, dtype=torch.float64).eval()
        ctx = AuditContext(
            model=model, data=audit_data(info), oracle=SpheresOracle((1.0, 10.0)), n=300,
            device=torch.device(device),
        )  # fmt: skip
        results[device] = {
            "metamer": run_attack("metamer", ctx).metrics,
            "pgd": run_attack("pgd-l2", ctx, epsilons=[0.5], random_start=False).metrics,
        }
    cuda, cpu = results["cuda"], results["cpu"]
    assert cuda["metamer"]["logit_match_max_abs"] <= 1e-8
    assert cuda["metamer"]["prediction_preserved"] == 1.0
    assert cuda["metamer"]["invariance_success_rate"] == cpu["metamer"]["invariance_success_rate"]
    assert cuda["pgd"]["clean_accuracy"] == cpu["pgd"]["clean_accuracy"]
    assert abs(cuda["pgd"]["robust_accuracy"]["0.5"] - cpu["pgd"]["robust_accuracy"]["0.5"]) <= 0.02


def test_sharded_cuda_audit_matches_one_process(tmp_path) -> None:
    """The quick report on CUDA under torchrun: nccl over 2 GPUs where there are two,
    one GPU otherwise; the same metrics as one CUDA process at another batch size."""
    import json
    import subprocess

    from click.testing import CliRunner
    from test_sharded_audit import SPHERES, assert_same, report_args, torchrun_cmd, torchrun_env

    from invaudit.cli import main

    ckpt = tmp_path / "spheres.pt"
    trained = CliRunner().invoke(main, [*SPHERES, "--out", str(ckpt)])
    assert trained.exit_code == 0, trained.output
    one = CliRunner().invoke(main, [*report_args(ckpt, tmp_path / "one", 16), "--device", "cuda"])
    assert one.exit_code == 0, one.output
    nproc = min(2, torch.cuda.device_count())
    cmd = torchrun_cmd([*report_args(ckpt, tmp_path / "two", 7), "--device", "cuda"], nproc)
    run = subprocess.run(cmd, env=torchrun_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    a, b = (json.loads((tmp_path / k / "report.json").read_text()) for k in ("one", "two"))
    assert b["environment"]["processes"] == nproc and b["environment"]["device"].startswith("cuda")
    for method in a["attacks"]:
        assert_same(a["attacks"][method]["metrics"], b["attacks"][method]["metrics"], method)
