"""The model zoo: bundled checkpoints, each with a JSON model card, named ``zoo:NAME``.

A zoo is a folder of pairs ``NAME.pt`` (a slim invaudit checkpoint) and
``NAME.json`` (its card: what it is, how it was trained, what it measured and the
sha256 of the ``.pt``).  The bundled zoo is ``models/`` next to this module;
``$INVAUDIT_ZOO_DIR`` points elsewhere (a private zoo, or a test's temporary one).

The registry reads cards only: it never loads a checkpoint.  Listing the zoo
costs a directory listing and a few small JSON reads; resolving a model for use
(``zoo:NAME`` through :func:`resolve_model_path`, or the default oracle through
:func:`zoo_oracle_for`) also checks the file's size and sha256 against its card
(:func:`verify_entry`, a few milliseconds for the bundled files), so a replaced or
damaged zoo file is refused with one line before anything is loaded from it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import file_sha256
from ..errors import CheckpointError, ConfigError

__all__ = [
    "CARD_FIELDS",
    "ROLES",
    "SELECTOR_PREFIX",
    "ZOO_DIR",
    "ZOO_ENV_VAR",
    "ZooEntry",
    "is_zoo_selector",
    "resolve_model_path",
    "verify_entry",
    "zoo_dir",
    "zoo_entries",
    "zoo_entry",
    "zoo_oracle_for",
]

#: The bundled zoo, shipped inside the package.
ZOO_DIR = Path(__file__).resolve().parent / "models"
#: Names another zoo folder; read on every call, so a test can set it late.
ZOO_ENV_VAR = "INVAUDIT_ZOO_DIR"
SELECTOR_PREFIX = "zoo:"
ROLES = ("classifier", "oracle")

#: Every key a card must hold (extra keys are kept out of :class:`ZooEntry` but allowed,
#: so a newer card still reads).
CARD_FIELDS = (
    "name", "summary", "role", "dataset", "arch", "loss", "file", "sha256", "bytes",
    "command", "data", "epochs", "wall_seconds", "hardware", "metrics", "notes",
)  # fmt: skip

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ZooEntry:
    """One model card, plus ``path``: where its checkpoint lies.

    ``metrics`` holds fractions in [0, 1] (or None where not measured, e.g. the
    probe of an oracle) and the text ``probe_command``.
    """

    name: str
    summary: str
    role: str
    dataset: str
    arch: str
    loss: str | None
    file: str
    sha256: str
    bytes: int
    command: str
    data: str
    epochs: int
    wall_seconds: float
    hardware: str
    metrics: dict[str, Any]
    notes: str
    path: Path

    @property
    def selector(self) -> str:
        return f"{SELECTOR_PREFIX}{self.name}"


def zoo_dir() -> Path:
    """The zoo folder: ``$INVAUDIT_ZOO_DIR`` if set, else the bundled :data:`ZOO_DIR`."""
    override = os.environ.get(ZOO_ENV_VAR, "")
    return Path(override).expanduser() if override else ZOO_DIR


def _card_error(card: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"zoo card {card}: {problem}")


def _card_record(card: Path) -> dict[str, Any]:
    """The JSON object a card file holds."""
    try:
        record = json.loads(card.read_text(encoding="utf-8"))
    except OSError as err:
        raise _card_error(card, f"cannot read it ({err.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _card_error(card, f"not valid JSON ({' '.join(str(err).split())})") from None
    if not isinstance(record, dict):
        raise _card_error(card, "not a JSON object")
    return record


def _check_card_fields(card: Path, record: dict[str, Any]) -> None:
    """That the card holds every field, names itself after its file, and has valid values."""
    missing = [key for key in CARD_FIELDS if key not in record]
    if missing:
        raise _card_error(card, f"lacks {', '.join(missing)}")
    # The file name is the selector users type, so a card must agree with it.
    if record["name"] != card.stem:
        raise _card_error(card, f"names the model {record['name']!r}, expected {card.stem!r}")
    if record["role"] not in ROLES:
        raise _card_error(card, f"role {record['role']!r}, expected one of {', '.join(ROLES)}")
    if not isinstance(record["metrics"], dict):
        raise _card_error(card, "metrics is not an object")
    if not isinstance(record["sha256"], str) or not _SHA256.fullmatch(record["sha256"]):
        raise _card_error(card, f"sha256 {record['sha256']!r} is not 64 lower-case hex digits")


def _card_checkpoint(card: Path, file: Any) -> Path:
    """Where the card's checkpoint ``file`` lies: beside the card, and present."""
    # A bare file name only: a card must not point outside its zoo.
    if not isinstance(file, str) or not file or Path(file).name != file:
        raise _card_error(card, f"file {file!r} is not a file name in the zoo folder")
    path = card.parent / file
    if not path.is_file():
        raise _card_error(card, f"its checkpoint {path} is missing")
    return path


def _read_card(card: Path) -> ZooEntry:
    record = _card_record(card)
    _check_card_fields(card, record)
    path = _card_checkpoint(card, record["file"])
    return ZooEntry(**{key: record[key] for key in CARD_FIELDS}, path=path)


def zoo_entries() -> list[ZooEntry]:
    """Every card of the zoo, sorted by name; ``[]`` when the folder is missing or empty.

    A malformed card, or one whose checkpoint is missing, raises
    :class:`CheckpointError` naming the card: a broken zoo is never half-listed.
    """
    folder = zoo_dir()
    if not folder.is_dir():
        return []
    return [_read_card(card) for card in sorted(folder.glob("*.json"))]


def _known(entries: list[ZooEntry]) -> str:
    if not entries:
        return f"the zoo at {zoo_dir()} has no models"
    return "the zoo has: " + ", ".join(e.name for e in entries)


def zoo_entry(name: str) -> ZooEntry:
    """The entry called ``name``; a one-line :class:`ConfigError` listing the names if none."""
    entries = zoo_entries()
    for entry in entries:
        if entry.name == name:
            return entry
    raise ConfigError(f"unknown zoo model {name!r}; {_known(entries)}")


def is_zoo_selector(text: object) -> bool:
    """Whether ``text`` is a ``zoo:NAME`` selector (paths, even ``Path('zoo:x')``, are not)."""
    return isinstance(text, str) and text.startswith(SELECTOR_PREFIX)


def resolve_model_path(text: str | os.PathLike[str]) -> str:
    """The checkpoint path for ``zoo:NAME`` (its size and sha256 checked against the
    card); any other path comes back as it is (as text)."""
    if is_zoo_selector(text):
        entry = zoo_entry(str(text)[len(SELECTOR_PREFIX) :])
        verify_entry(entry)
        return str(entry.path)
    return os.fspath(text)


def zoo_oracle_for(dataset_name: str) -> str | None:
    """The checkpoint path of the zoo's oracle for ``dataset_name``, or None.

    Should a zoo hold several, the first by name is the default (names sort stably).
    """
    for entry in zoo_entries():
        if entry.role == "oracle" and entry.dataset == dataset_name:
            verify_entry(entry)
            return str(entry.path)
    return None


def verify_entry(entry: ZooEntry) -> None:
    """Check the checkpoint's size and sha256 against the card (CheckpointError if not)."""
    size = entry.path.stat().st_size
    if size != entry.bytes:
        raise CheckpointError(
            f"zoo model {entry.name!r}: {entry.path} has {size} bytes, its card says "
            f"{entry.bytes} (file replaced or card stale)"
        )
    digest = file_sha256(entry.path)
    if digest != entry.sha256:
        raise CheckpointError(
            f"zoo model {entry.name!r}: {entry.path} has sha256 {digest}, its card says "
            f"{entry.sha256} (file replaced or card stale)"
        )
