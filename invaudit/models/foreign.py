"""A classifier invaudit did not build (TorchScript, torch.export, a Python factory),
dressed with the descriptive attributes every audit reads.

:class:`ForeignClassifier` wraps any callable module mapping float inputs
``[B, *input_shape]`` to logits ``[B, num_classes]``.  It carries the same
attributes as :class:`~invaudit.models.oracle_cnn.OracleCNN` (``arch``,
``config``, ``num_classes``, ``input_shape``, ``checkpoint_info``,
``invertible = False``), taken from the dataset the user names, so attacks,
reports and ``--oracle`` treat it like any other plain classifier.

Device and dtype: ``.to(device=..., dtype=...)`` moves and casts the wrapped
module's parameters and buffers as well as a zero-size ``anchor`` parameter
registered first, so ``next(model.parameters())`` (how the attacks learn the
model's device and dtype) answers even for a module without parameters.  A
TorchScript or exported module may hold float32 constants or ops that refuse
float64; such a module fails on its first float64 input, which the audit's
one-example check (``invaudit.attacks.setup``) reports in one line.  Images are
audited in float32 unless ``--dtype float64`` is asked for.

Mode: ``eval()`` / ``train()`` set the wrapper's flag and the wrapped module's
where it has one; a torch.export program has no mode to switch (``eval()`` on it
raises in torch 2.x), it runs as it was exported.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .classifier import check_batch
from .plain import PlainClassifier


class ForeignClassifier(PlainClassifier):
    """``x [B, *input_shape] -> logits [B, num_classes]`` by a module from outside invaudit.

    Args:
        module: the callable module (a ``torch.jit.ScriptModule``, the ``.module()`` of
            an ``ExportedProgram``, or any ``nn.Module``).
        arch: what it is, for records: ``"torchscript"``, ``"torch.export"`` or the
            ``py:package.module:function`` string.
        dataset: the dataset record (``name``, ``input_shape``, ``num_classes``,
            ``bounds``, as a checkpoint's ``dataset`` section holds it).
        source: where it came from, for the report's ``model`` record (plain data).
    """


    def __init__(
        self,
        module: nn.Module,
        *,
        arch: str,
        dataset: dict[str, Any],
        source: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        try:
            input_shape = tuple(int(s) for s in dataset["input_shape"])
            num_classes = int(dataset["num_classes"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(
                f"{arch}: the dataset record needs input_shape and num_classes, got "
                f"{sorted(dataset) if isinstance(dataset, dict) else type(dataset).__name__}"
            ) from err
        # Registered before the module, so it is the first of parameters(): device and
        # dtype of the wrapper even when the wrapped module holds no parameter at all.
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)
        self.module = module
        self.arch = arch
        self.num_classes = num_classes
        self.input_shape = input_shape
        self.dataset_name = str(dataset.get("name", "the dataset"))
        self.source: dict[str, Any] = dict(source or {})
        self.config: dict[str, Any] = {"source": arch, **self.source}
        self.checkpoint_info: dict[str, Any] | None = {
            "dataset": dict(dataset),
            "loss": None,
            "training": None,
            "metrics": None,
            "versions": None,
        }

    def train(self, mode: bool = True) -> ForeignClassifier:
        """Set the mode of the wrapper and, where it has one to switch, the module's."""
        self.training = mode
        try:
            self.module.train(mode)
        except NotImplementedError:  # a torch.export program: runs as it was exported
            pass
        return self

    def _check(self, x: Any) -> None:
        """One clear line for a wrong input instead of an error deep inside the module."""
        check_batch(x, self.anchor, self.input_shape, "input")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits, ``[B, num_classes]``; another output is a one-line :class:`ConfigError`."""
        self._check(x)
        out = self.module(x)
        expected = [x.shape[0], self.num_classes]
        if not isinstance(out, torch.Tensor):
            raise ConfigError(
                f"{self.arch} returns {type(out).__name__} for input {list(x.shape)}; "
                f"expected a logits tensor of shape {expected}"
            )
        if list(out.shape) != expected:
            raise ConfigError(
                f"{self.arch} returns shape {list(out.shape)} for input {list(x.shape)}; "
                f"expected {expected} ({self.num_classes} classes of {self.dataset_name})"
            )
        return out
