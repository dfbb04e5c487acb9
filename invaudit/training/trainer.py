"""Training CE and iCE fiRevNets: one process, one GPU, or many under torchrun.

The loop alternates, every batch, the nuisance classifier's step (it learns to
read y from a detached z_n) and the network's step (CE, or iCE's min step).
Under CE the nuisance classifier still trains, on detached features, purely
as a monitor: it never sends a gradient into F, and it makes the CE and iCE
logs comparable.  A checkpoint is written atomically after every epoch, with
everything ``--resume`` needs to continue exactly where that epoch ended; with
``snapshot_dir`` (``invaudit train --snapshots DIR``) a copy of each one is kept
as ``DIR/epoch-N.pt``.

A plain (non-invertible) arch such as ``oracle-cnn`` has no z_n, so it has no
nuisance game either: its step is cross-entropy on its logits, its metrics
are the logit ones only, and iCE is refused.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, TensorDataset

from ..data.splits import Splits, load_splits
from ..errors import CheckpointError, ConfigError, OutputError
from ..models import InvertibleClassifier, Model, build, is_invertible
from ..models.checkpoint import model_payload, read_checkpoint, save_checkpoint
from ..outputs import check_writable, require_path
from .adversarial import check_adversarial, default_step_size, linf_attack, ramped_epsilon
from .distributed import DistContext
from .losses import NuisanceGame, bits_per_dim
from .presets import PRESETS, make_optimizer, make_scheduler
from .settings import TrainSettings, settings_conflict

LOSSES = ("ce", "ice")


class Callbacks:
    """What a front end (the CLI's progress bar) hears from the loop; rank 0 only.

    The base class does nothing, so a silent run needs no callbacks at all.
    """

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        pass

    def batch_end(self, running: dict[str, float]) -> None:
        pass

    def evaluate_start(self, n_test: int) -> None:
        pass

    def epoch_end(self, metrics: dict[str, float]) -> None:
        pass


class _ModelStep(nn.Module):
    """F's forward for training; with a likelihood term also the prior's NLL (so DDP
    syncs it too)."""

    def __init__(self, model: InvertibleClassifier, game: NuisanceGame, with_prior: bool) -> None:
        super().__init__()
        self.model = model
        self.prior = game.prior if with_prior else None
        # The bound method, not the game: registering the game as a submodule would
        # hand D_nc's parameters to this module's DDP wrapper as well as to its own.
        self.prior_input = game.prior_input

    def forward(self, x: torch.Tensor):
        z, logdet = self.model.forward_logdet(x)
        z_s, z_n = self.model.split(z)
        nll = self.prior.nll(self.prior_input(z_s, z_n)) if self.prior is not None else None
        return z_s, z_n, logdet, nll


class _AdversaryStep(nn.Module):
    """D_nc's max step on detached z_n; under CE it also fits the prior (monitor only)."""

    def __init__(self, game: NuisanceGame, fit_prior: bool) -> None:
        super().__init__()
        self.classifier = game.classifier
        self.prior = game.prior if fit_prior else None

    def forward(self, z_n: torch.Tensor, y: torch.Tensor, prior_input: torch.Tensor):
        logits = self.classifier(z_n)
        loss = F.cross_entropy(logits, y)
        if self.prior is not None:
            loss = loss + self.prior.nll(prior_input).mean() / prior_input.shape[1]
        return loss, logits


def arch_config_for(settings: TrainSettings, info: dict[str, Any]) -> dict[str, Any]:
    """The arch config: the data's shape and classes, plus the user's overrides."""
    shape, classes = info["input_shape"], info["num_classes"]
    if settings.arch == "firevnet-fc":
        if len(shape) != 1:
            raise ConfigError(f"firevnet-fc takes vectors; {settings.dataset} has shape {shape}")
        derived = {"dim": shape[0], "num_classes": classes}
    else:
        if len(shape) != 3:
            raise ConfigError(f"{settings.arch} takes images; {settings.dataset} has shape {shape}")
        derived = {"in_channels": shape[0], "image_size": shape[1], "num_classes": classes}
    for key, value in derived.items():
        if key in settings.arch_config and settings.arch_config[key] != value:
            raise ConfigError(
                f"--set {key}={settings.arch_config[key]} conflicts with dataset "
                f"{settings.dataset}, which needs {key}={value}"
            )
    return {**settings.arch_config, **derived}


def check_settings(settings: TrainSettings) -> None:
    """Refuse (:class:`ConfigError`) settings no run can have, before any data is loaded."""
    if settings.loss not in LOSSES:
        raise ConfigError(f"unknown loss {settings.loss!r}; expected ce or ice")
    if settings.dataset not in PRESETS:
        raise ConfigError(
            f"unknown dataset {settings.dataset!r}; expected one of {', '.join(PRESETS)}"
        )
    if settings.epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {settings.epochs}")
    # iCE's terms all live on z_n.
    if settings.loss == "ice" and not is_invertible(settings.arch):
        raise ConfigError(f"iCE needs an invertible arch; {settings.arch} is not invertible")
    check_adversarial(
        settings.adversarial, settings.adv_epsilon, settings.adv_steps, settings.adv_step_size
    )
    if settings.adversarial != "none" and is_invertible(settings.arch):
        raise ConfigError(
            f"--adversarial trains plain classifiers (oracle-cnn, cnn); {settings.arch} is "
            "invertible"
        )
    if settings.nll_weight and (settings.loss != "ce" or not is_invertible(settings.arch)):
        raise ConfigError(
            "--nll-weight applies to CE training of an invertible arch "
            "(iCE has the same term as --mle-weight)"
        )


def splits_for(settings: TrainSettings) -> Splits:
    """The named dataset's training and test splits, as the settings ask."""
    return load_splits(
        settings.dataset,
        data_dir=settings.data_dir,
        download=settings.download,
        limit=settings.limit,
        test_limit=settings.test_limit,
        seed=settings.seed,
        dim=settings.dim,
        radii=settings.radii,
        n_train=settings.n_train,
        n_test=settings.n_test,
        image_size=settings.image_size,
    )


def snapshot_path(folder: str | Path, epoch: int) -> Path:
    """Where a run with ``snapshot_dir=folder`` keeps the checkpoint of epoch ``epoch``
    (counted from 1)."""
    return Path(folder) / f"epoch-{epoch}.pt"


def _not_a_snapshot(path: Path, epoch: int, settings: TrainSettings) -> str | None:
    """Why ``path`` is not epoch ``epoch``'s snapshot of a run with ``settings`` (None: it is)."""
    if path.is_symlink() or not path.is_file():
        return "which is not a plain file"
    try:
        training = read_checkpoint(path).get("training") or {}
    except CheckpointError:
        return "which is not an invaudit checkpoint"
    if training.get("epochs_done") != epoch or not isinstance(training.get("settings"), dict):
        return f"which does not hold epoch {epoch} of a training run"
    conflict = settings_conflict(training["settings"], settings)
    if conflict is not None:
        return f"from a run whose {conflict[0]} was {conflict[1]!r}, not {conflict[2]!r}"
    return None


def check_snapshot_dir(folder: str | Path, settings: TrainSettings) -> None:
    """Refuse (:class:`OutputError`) a snapshot folder a run with ``settings`` must not write.

    The run writes ``epoch-N.pt`` for N = 1 .. ``settings.epochs``.  Such a file may
    already be there only as epoch N's snapshot of a run with the same settings
    (an earlier, interrupted or repeated, run of this one); anything else is
    invaudit's to leave alone.  A folder that cannot take new files is refused too.
    """
    folder = Path(folder)
    option = "snapshot folder"
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"cannot write {option} {folder}: it is a file, not a folder")
    check_writable(require_path(folder, option), option, into=True)
    for epoch in range(1, settings.epochs + 1):
        path = snapshot_path(folder, epoch)
        if not (path.exists() or path.is_symlink()):
            continue
        problem = _not_a_snapshot(path, epoch, settings)
        if problem is not None:
            raise OutputError(
                f"{option} {folder} holds {path.name} {problem}; it would be replaced, "
                "so move it away or choose another folder"
            )


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    ctx: DistContext,
    workers: int,
) -> tuple[DataLoader, DistributedSampler]:
    """This rank's shard; in-memory tensors are sliced a batch at a time."""
    sampler = DistributedSampler(
        dataset,
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=False,
    )
    if isinstance(dataset, TensorDataset):
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return DataLoader(dataset, sampler=batches, batch_size=None), sampler
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers), sampler


@torch.no_grad()
def evaluate(
    model: Model, game: NuisanceGame | None, loader: DataLoader, ctx: DistContext
) -> dict[str, float]:
    """Logit accuracy on ``loader`` (all ranks' shards summed), and the nuisance
    classifier's where there is a game (``game=None`` for a plain model)."""
    was_training = model.training
    model.eval()
    if game is not None:
        game.eval()
    correct = nuisance_correct = total = 0.0
    for x, y in loader:
        x, y = x.to(ctx.device), y.to(ctx.device)
        if game is None:
            logits = model(x)
        else:
            logits, z_n = model.split(model(x))
            nuisance_correct += (game.classifier(z_n).argmax(1) == y).sum().item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    correct, nuisance_correct, total = ctx.sum([correct, nuisance_correct, total])
    model.train(was_training)
    if game is None:
        return {"logit_acc": correct / total}
    game.train(was_training)
    return {"logit_acc": correct / total, "nuisance_acc": nuisance_correct / total}


#: Test examples per rank behind an adversarial run's per-epoch robust accuracy, and the
#: PGD steps of that check (a monitor for collapse, not the audit's PGD-40).
ROBUST_TEST_N, ROBUST_TEST_STEPS = 500, 10


def robust_test_accuracy(
    model: Model, loader: DataLoader, ctx: DistContext, epsilon: float, bounds: tuple[float, float]
) -> float:
    """PGD-10 accuracy at L∞ ``epsilon`` on the first :data:`ROBUST_TEST_N` examples of each
    rank's shard of ``loader`` (all ranks summed), in eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0.0
    for x, y in loader:
        x, y = x.to(ctx.device)[: ROBUST_TEST_N - int(total)], y.to(ctx.device)
        y = y[: len(x)]
        x_adv = linf_attack(
            model, x, y, epsilon=epsilon, steps=ROBUST_TEST_STEPS,
            step_size=2.5 * epsilon / ROBUST_TEST_STEPS, bounds=bounds,
        )  # fmt: skip
        with torch.no_grad():
            correct += (model(x_adv).argmax(1) == y).sum().item()
        total += len(y)
        if total >= ROBUST_TEST_N:
            break
    correct, total = ctx.sum([correct, total])
    model.train(was_training)
    return correct / max(total, 1.0)


class Trainer:
    """One training run: build or resume, then ``fit`` epoch by epoch."""

    def __init__(
        self,
        settings: TrainSettings,
        out: str | Path,
        *,
        resume: bool = False,
        callbacks: Callbacks | None = None,
        splits: Splits | None = None,
        snapshot_dir: str | Path | None = None,
    ) -> None:
        """``splits`` replaces the named dataset (tests and studies on custom data);
        ``settings.dataset`` then only picks the optimiser preset.  ``snapshot_dir``
        also keeps every epoch's checkpoint there as ``epoch-N.pt`` (see
        :func:`check_snapshot_dir` for which existing files it may replace)."""
        check_settings(settings)
        self.snapshot_dir = None if snapshot_dir is None else Path(snapshot_dir)
        if self.snapshot_dir is not None:  # refused before any data is loaded
            check_snapshot_dir(self.snapshot_dir, settings)
        self.settings = settings
        self.out = Path(out)
        self.callbacks = callbacks or Callbacks()
        self.ctx = DistContext.setup(settings.device)
        self.preset = PRESETS[settings.dataset]
        self.batch_size = settings.batch_size or self.preset.batch_size
        self.lr = settings.lr or self.preset.lr
        torch.manual_seed(settings.seed)
        self.splits: Splits = splits or splits_for(settings)
        self._build_model()
        self.history: list[dict[str, float]] = []
        self.schedule = 1.0  # the warm-up / ramp factor of the current batch (iCE)
        self.progress_epochs = 0.0  # epochs done, with the current one's fraction
        self.start_epoch = 0
        self.wall_seconds = 0.0
        self._make_loaders()
        if resume and self.out.exists():
            self._resume()
        else:
            self._initialise()
        self._wrap_steps()

    # -- set-up ---------------------------------------------------------------
    def _build_model(self) -> None:
        """F, and for an invertible F the nuisance game; their optimisers and schedule."""
        settings = self.settings
        self.model: Model = build(settings.arch, **arch_config_for(settings, self.splits.info)).to(
            self.ctx.device
        )
        self.ice = settings.loss == "ice"
        self.uses_prior = self.ice or settings.nll_weight > 0
        model_params = list(self.model.parameters())
        # A plain model has no z_n: no nuisance game, no prior, no adversary.
        self.game: NuisanceGame | None = None
        self.adversary_optimizer: torch.optim.Optimizer | None = None
        if isinstance(self.model, InvertibleClassifier):
            model_params += self._build_game(self.model)
        self.optimizer = make_optimizer(self.preset, model_params, self.lr)
        self.scheduler = make_scheduler(self.preset, self.optimizer, settings.epochs)

    def _build_game(self, model: InvertibleClassifier) -> list[nn.Parameter]:
        """The nuisance game and D_nc's optimiser; returns the game's parameters F's
        optimiser takes too (the prior, where it is part of F's objective)."""
        settings = self.settings
        hidden = settings.ice.nuisance_hidden or (1000 if settings.dataset == "spheres" else 512)
        self.game = NuisanceGame(model.dim, model.num_classes, hidden, settings.ice).to(
            self.ctx.device
        )
        # Under iCE (or CE with an NLL weight) the prior is part of F's objective;
        # under plain CE only a monitor.
        adversary_params = list(self.game.classifier.parameters())
        prior_params = list(self.game.prior.parameters())
        if not self.uses_prior:
            adversary_params += prior_params
        self.adversary_optimizer = torch.optim.Adam(adversary_params, lr=settings.adversary_lr)
        return prior_params if self.uses_prior else []

    def _make_loaders(self) -> None:
        settings = self.settings
        self.train_loader, self.train_sampler = make_loader(
            self.splits.train,
            self.batch_size,
            shuffle=True,
            seed=settings.seed,
            ctx=self.ctx,
            workers=settings.workers,
        )
        self.test_loader, _ = make_loader(
            self.splits.test,
            max(self.batch_size, 256),
            shuffle=False,
            seed=settings.seed,
            ctx=self.ctx,
            workers=settings.workers,
        )

    def _wrap_steps(self) -> None:
        """The modules the loop calls, wrapped in DDP when there are several processes."""
        if self.game is None:
            self.model_step = self._wrap(self.model)
            return
        self.model_step = self._wrap(_ModelStep(self.model, self.game, self.uses_prior))
        self.adversary_step = self._wrap(_AdversaryStep(self.game, fit_prior=not self.uses_prior))

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.ctx.distributed:
            return module
        ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    @torch.no_grad()
    def _initialise(self) -> None:
        """ActNorm's data-dependent initialisation on one batch.

        Done before DDP wraps the model: DDP then broadcasts rank 0's values,
        so every rank starts from identical weights.  Plain models have nothing
        data-dependent to initialise.
        """
        if not isinstance(self.model, InvertibleClassifier):
            return
        x, _ = next(iter(self.train_loader))
        self.model.train()
        self.model(x.to(self.ctx.device))

    def _resume(self) -> None:
        payload = read_checkpoint(self.out)
        saved = payload.get("training", {}).get("settings")
        state = payload.get("train_state")
        if saved is None or state is None:
            raise CheckpointError(f"{self.out}: holds no training state to resume from")
        conflict = settings_conflict(saved, self.settings)
        if conflict is not None:
            key, was, now = conflict
            raise CheckpointError(f"cannot resume {self.out}: {key} was {was!r}, now {now!r}")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.game is not None and self.adversary_optimizer is not None:
            self.game.load_state_dict(state["game"])
            self.adversary_optimizer.load_state_dict(state["adversary_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._follow_schedule_of_this_length()
        self.history = list(payload["training"]["history"])
        self.start_epoch = len(self.history)
        self.wall_seconds = float(payload["training"].get("wall_seconds", 0.0))

    def _follow_schedule_of_this_length(self) -> None:
        """A run resumed with another ``--epochs`` decays on that length's steps from here on.

        The saved scheduler carries the step size of the run that wrote it; left
        alone, a run extended one epoch at a time would decay after every epoch.
        """
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.StepLR):
            return
        step = self.preset.step_size(self.settings.epochs)
        self.scheduler.step_size = step
        factor = self.scheduler.gamma ** (self.scheduler.last_epoch // step)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * factor

    # -- the loop -------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train the remaining epochs; returns the last epoch's metrics."""
        try:
            for epoch in range(self.start_epoch, self.settings.epochs):
                start = time.perf_counter()
                metrics = self._train_epoch(epoch)
                if self.ctx.is_main:
                    self.callbacks.evaluate_start(len(self.test_loader.dataset))
                metrics.update(self._test_metrics())
                metrics["seconds"] = time.perf_counter() - start
                self.wall_seconds += metrics["seconds"]
                self.history.append(metrics)
                if self.ctx.is_main:
                    self._save()
                    self.callbacks.epoch_end(metrics)
                self.ctx.barrier()
        finally:
            self.ctx.close()
        return self.history[-1] if self.history else {}

    def _test_metrics(self) -> dict[str, float]:
        test = evaluate(self.model, self.game, self.test_loader, self.ctx)
        metrics = {f"{key.removesuffix('_acc')}_test_acc": value for key, value in test.items()}
        if self.settings.adversarial != "none":
            metrics["pgd10_test_acc"] = robust_test_accuracy(
                self.model, self.test_loader, self.ctx, self.settings.adv_epsilon, self._bounds()
            )
        return metrics

    def _bounds(self) -> tuple[float, float]:
        low, high = self.splits.info.get("bounds", (0.0, 1.0))
        return float(low), float(high)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.train_sampler.set_epoch(epoch)
        # Augmentation draws from the global generator: seed it per epoch and rank,
        # so a resumed run sees the same shifts as an uninterrupted one.
        torch.manual_seed(self.settings.seed * 100_003 + epoch * 101 + self.ctx.rank)
        self.model.train()
        if self.game is not None:
            self.game.train()
        if self.ctx.is_main:
            self.callbacks.epoch_start(epoch, self.settings.epochs, len(self.train_loader))
        # Sums of per-batch loss terms and of per-example hits, by metric name.
        terms: dict[str, float] = {}
        hits: dict[str, float] = {}
        seen = batches = 0
        total_batches = max(len(self.train_loader), 1)
        for x, y in self.train_loader:
            x, y = x.to(self.ctx.device), y.to(self.ctx.device)
            self.progress_epochs = epoch + batches / total_batches
            self.schedule = self.settings.ice.schedule(self.progress_epochs)
            batch_terms, batch_hits = self._step(x, y)
            for sums, batch in ((terms, batch_terms), (hits, batch_hits)):
                for key, value in batch.items():
                    sums[key] = sums.get(key, 0.0) + value
            seen += len(y)
            batches += 1
            if self.ctx.is_main:
                running = {"loss": terms["loss"] / batches, "acc": hits["logit_train_acc"] / seen}
                if "nuisance_train_acc" in hits:
                    running["nuisance_acc"] = hits["nuisance_train_acc"] / seen
                self.callbacks.batch_end(running)
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        # Every rank has the same keys in the same order, so the sums line up.
        totals = self.ctx.sum([*terms.values(), *hits.values(), float(batches), float(seen)])
        n_batches, n_seen = totals[-2], totals[-1]
        means = [t / n_batches for t in totals[: len(terms)]]
        rates = [h / n_seen for h in totals[len(terms) : -2]]
        return {
            "epoch": epoch + 1,
            "lr": lr,
            **dict(zip(terms, means, strict=True)),
            **dict(zip(hits, rates, strict=True)),
        }

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
        """One batch: its loss terms (batch means) and its hits (counts of examples)."""
        if self.game is None:  # a plain model: cross-entropy on its logits
            terms: dict[str, float] = {}
            if self.settings.adversarial != "none":  # on the batch's attacks instead
                x, terms["adv_epsilon"] = self._attack(x, y)
            logits = self.model_step(x)
            loss = F.cross_entropy(logits, y)
            self._descend(loss)
            return {"loss": loss.item(), **terms}, {"logit_train_acc": _hits(logits, y)}
        return self._game_step(self.game, x, y)

    def _attack(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The batch's L∞ attack at this point's ε, and that ε.  It attacks the bare
        model, not its DDP wrapper: only the training step's backward may sync."""
        s = self.settings
        epsilon = ramped_epsilon(s.adv_epsilon, s.adv_ramp_epochs, self.progress_epochs)
        if epsilon == 0:
            return x, 0.0
        steps = 1 if s.adversarial == "fgsm-rs" else s.adv_steps
        step_size = s.adv_step_size or default_step_size(s.adversarial, epsilon, steps)
        x_adv = linf_attack(
            self.model, x, y, epsilon=epsilon, steps=steps, step_size=step_size,
            bounds=self._bounds(),
        )  # fmt: skip
        return x_adv, epsilon

    def _game_step(
        self, game: NuisanceGame, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[dict[str, float], dict[str, float]]:
        z_s, z_n, logdet, nll = self.model_step(x)
        assert self.adversary_optimizer is not None  # always set together with the game
        for _ in range(self.settings.ice.adversary_steps):  # the max step
            self.adversary_optimizer.zero_grad(set_to_none=True)
            adversary_loss, nuisance_logits = self.adversary_step(
                z_n.detach(), y, game.prior_input(z_s, z_n).detach()
            )
            adversary_loss.backward()
            self.adversary_optimizer.step()
        if self.ice:  # the min step of Definition 7
            loss, terms = game.model_loss(
                game.classifier, z_s, z_n, nll, logdet, y, schedule=self.schedule
            )
        else:
            loss = F.cross_entropy(z_s, y)
            terms = {"sce": loss.item(), "nce": F.cross_entropy(nuisance_logits, y).item()}
            if nll is not None:  # CE + nll_weight * MLE_n
                mle = bits_per_dim(nll, logdet, self.model.dim)
                loss = loss + self.settings.nll_weight * mle
            else:
                with torch.no_grad():
                    prior_input = game.prior_input(z_s, z_n)
                    mle = bits_per_dim(game.prior.nll(prior_input), logdet, self.model.dim)
            terms["mle"] = mle.item()
        self._descend(loss)
        named = {
            "loss": loss.item(),
            "sce": terms["sce"],
            "nce": terms["nce"],
            "mle_bits_per_dim": terms["mle"],
        }
        for key in ("hsic", "class_mean_share", "confusion", "permuted"):
            if key in terms:
                named[key] = terms[key]
        if self.ice:
            named["schedule"] = self.schedule
        return named, {
            "logit_train_acc": _hits(z_s, y),
            "nuisance_train_acc": _hits(nuisance_logits, y),
        }

    def _descend(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    # -- the checkpoint ---------------------------------------------------------
    def _save(self) -> None:
        """The epoch's checkpoint: its snapshot first (a run killed between the two
        writes redoes the epoch and rewrites that snapshot), then ``out``."""
        payload = self._payload()
        if self.snapshot_dir is not None:
            save_checkpoint(snapshot_path(self.snapshot_dir, len(self.history)), payload)
        save_checkpoint(self.out, payload)

    def _payload(self) -> dict[str, Any]:
        payload = model_payload(self.model)
        payload.update(
            loss=self.settings.loss,
            dataset=self.splits.info,
            metrics=dict(self.history[-1]),
            training={
                "settings": self.settings.as_dict(),
                "epochs_done": len(self.history),
                "history": list(self.history),
                "wall_seconds": self.wall_seconds,
                "world_size": self.ctx.world_size,
                "device": str(self.ctx.device),  # what --device auto resolved to
                "batch_size": self.batch_size,
                "lr": self.lr,
                "preset": dataclasses.asdict(self.preset),
            },
            train_state=self._train_state(),
        )
        return payload

    def _train_state(self) -> dict[str, Any]:
        """What ``--resume`` needs beyond the model's weights."""
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }
        if self.game is not None and self.adversary_optimizer is not None:
            state["game"] = {k: v.detach().cpu() for k, v in self.game.state_dict().items()}
            state["adversary_optimizer"] = self.adversary_optimizer.state_dict()
        return state


def _hits(logits: torch.Tensor, y: torch.Tensor) -> float:
    """How many of the batch's decisions are right."""
    return float((logits.argmax(1) == y).sum().item())
