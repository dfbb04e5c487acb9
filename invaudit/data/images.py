"""MNIST, Fashion-MNIST and ImageFolder datasets as ``[0, 1]`` float tensors.

MNIST-style data is read straight from the standard idx files in
``<data_dir>/MNIST/raw`` (resp. ``FashionMNIST/raw``), gzipped or not.  torchvision
0.29's ``MNIST`` only accepts the *extracted* files and, given just the ``.gz``
archives, wants to extract them into ``raw/`` -- which fails on a read-only data dir
(CI's shared copy) and would silently write into a user's dataset mirror.  Reading the
idx format is thirty lines, so we read it ourselves and never write; torchvision is
used only to download, when the files are missing and the caller asked for it.
"""

from __future__ import annotations

import gzip
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from invaudit.data.locate import resolve_data_dir
from invaudit.errors import DataError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_DATASETS",
    "IdxImageDataset",
    "has_split_files",
    "image_folder_dataset",
    "load_image_dataset",
    "read_idx",
    "read_idx_pair",
]

#: ImageNet channel statistics, for models that normalise internally; datasets here
#: always return unnormalised ``[0, 1]`` images.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Maximum shift, in pixels, of the MNIST training augmentation.
SHIFT_PX = 3

_SPLITS = ("train", "test")
_IDX_DTYPES = {0x08: torch.uint8}


@dataclass(frozen=True)
class _IdxSource:
    folder: str  # sub-folder of the data dir, as torchvision names it
    downloader: type[datasets.MNIST]
    classes: tuple[str, ...]


IMAGE_DATASETS: dict[str, _IdxSource] = {
    "mnist": _IdxSource("MNIST", datasets.MNIST, tuple(str(d) for d in range(10))),
    "fashion-mnist": _IdxSource(
        "FashionMNIST", datasets.FashionMNIST, tuple(datasets.FashionMNIST.classes)
    ),
}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an idx file (``.gz`` or plain) of unsigned bytes into a uint8 tensor.

    Format (big-endian): two zero bytes, a type code (0x08 = uint8), the number of
    dimensions, one int32 per dimension, then the data.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"expected a readable idx file at {path}, got: {_one_line(err)}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"expected an idx file of uint8 at {path}, got a bad header {raw[:4]!r}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    if len(raw) != header + math.prod(shape):
        raise DataError(
            f"expected {header + math.prod(shape)} bytes for shape {shape} in {path}, "
            f"got {len(raw)} (truncated or corrupt file)"
        )
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8, offset=header).view(shape)


def read_idx_pair(image_file: Path, label_file: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[N, H, W]`` and labels ``[N]`` (uint8) from two idx files that must agree."""
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise DataError(
            f"expected images [N, H, W] and labels [N] in {image_file.parent}, "
            f"got {list(images.shape)} and {list(labels.shape)}"
        )
    return images, labels


def _file_stems(split: str) -> tuple[str, str]:
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find_idx(raw_dir: Path, stem: str) -> Path | None:
    """The extracted file if present (what torchvision leaves), else the archive."""
    for candidate in (raw_dir / stem, raw_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def has_split_files(name: str, split: str, data_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether both idx files of ``name``'s ``split`` are in the data dir (no download)."""
    raw_dir = resolve_data_dir(data_dir) / IMAGE_DATASETS[name].folder / "raw"
    return all(_find_idx(raw_dir, stem) is not None for stem in _file_stems(split))


def _download(name: str, root: Path, split: str) -> None:
    source = IMAGE_DATASETS[name]
    try:
        source.downloader(root=str(root), train=split == "train", download=True)
    except (RuntimeError, OSError) as err:
        raise DataError(f"could not download {name} into {root}: {_one_line(err)}") from None


def _locate_files(name: str, root: Path, split: str, download: bool) -> tuple[Path, Path]:
    raw_dir = root / IMAGE_DATASETS[name].folder / "raw"
    stems = _file_stems(split)
    found = [_find_idx(raw_dir, stem) for stem in stems]
    if None in found and download:
        _download(name, root, split)
        found = [_find_idx(raw_dir, stem) for stem in stems]
    if None in found:
        expected = ", ".join(f"{stem}.gz" for stem in stems)
        hint = "" if download else "; pass download=True to fetch them"
        raise DataError(
            f"{name} {split} split not found: expected {expected} (or extracted) in {raw_dir}{hint}"
        )
    images, labels = found
    return images, labels  # type: ignore[return-value]


def _check_choice(what: str, value: object, choices: tuple[str, ...]) -> str:
    key = value.lower() if isinstance(value, str) else value
    if key not in choices:
        raise DataError(f"expected {what} in {{{', '.join(choices)}}}, got {value!r}")
    return key  # type: ignore[return-value]


def _check_int(what: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DataError(f"expected {what} as an integer >= {minimum}, got {value!r}")
    return int(value)


def _subset_indices(total: int, limit: int | None, seed: int) -> torch.Tensor:
    """A seeded random subset, kept in file order; ``limit >= total`` keeps everything."""
    if limit is None or limit >= total:
        return torch.arange(total)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=gen)[:limit].sort().values


class IdxImageDataset(Dataset):
    """Grey-scale digits or clothes as ``(x float32 [1, 28, 28] in [0, 1], y int64)``.

    With ``train_transform`` every read shifts the image by up to ``SHIFT_PX`` pixels
    (zero fill, so values stay in ``[0, 1]``) and dequantises it uniformly:
    ``x = (k + u) / 256`` for the byte ``k`` and ``u ~ U[0, 1)``.  Dequantisation is
    there for the flow likelihood: a density on the 256 discrete grey levels can grow
    without bound on the lattice points, whereas the likelihood of dequantised data is
    a lower bound on the discrete one (Theis et al., 2016).  Without ``train_transform``
    ``x = k / 255`` exactly.  The random draws use torch's global generator, so they
    follow ``torch.manual_seed`` and the DataLoader's per-worker seeding.

    Attributes:
        data: uint8 ``[N, 28, 28]`` images; targets: int64 ``[N]`` labels.
        indices: int64 ``[N]`` positions of the items in the original split file.
    """

    def __init__(
        self,
        data: torch.Tensor,
        targets: torch.Tensor,
        *,
        name: str,
        split: str,
        classes: tuple[str, ...],
        train_transform: bool,
        indices: torch.Tensor,
    ) -> None:
        self.data = data
        self.targets = targets
        self.name = name
        self.split = split
        self.classes = classes
        self.train_transform = train_transform
        self.indices = indices
        self._shift = transforms.RandomCrop(data.shape[-1], padding=SHIFT_PX)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.data[index].unsqueeze(0)
        if self.train_transform:
            image = self._shift(image)
            x = (image.float() + torch.rand(image.shape)) / 256.0
        else:
            x = image.float() / 255.0
        return x, self.targets[index].clone()

    def __repr__(self) -> str:
        return (
            f"IdxImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"train_transform={self.train_transform})"
        )


def load_image_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    train_transform: bool,
    download: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> IdxImageDataset:
    """MNIST or Fashion-MNIST from ``data_dir`` (see :func:`resolve_data_dir`).

    Reads ``<data_dir>/MNIST/raw/*`` (resp. ``FashionMNIST/raw/*``) without writing
    anything, so a read-only directory works.  Missing files are downloaded through
    torchvision only with ``download=True``; otherwise a :class:`DataError` names the
    directory and the files expected.  ``limit`` keeps a random subset of that size,
    the same for the same ``seed``.
    """
    name = _check_choice("dataset name", name, tuple(IMAGE_DATASETS))
    split = _check_choice("split", split, _SPLITS)
    seed = _check_int("seed", seed, 0)
    if limit is not None:
        limit = _check_int("limit", limit, 1)
    root = resolve_data_dir(data_dir)
    images, labels = read_idx_pair(*_locate_files(name, root, split, download))
    keep = _subset_indices(len(labels), limit, seed)
    return IdxImageDataset(
        images[keep].contiguous(),
        labels[keep].long(),
        name=name,
        split=split,
        classes=IMAGE_DATASETS[name].classes,
        train_transform=train_transform,
        indices=keep,
    )


def _as_int64(target: int) -> torch.Tensor:
    # Module-level (not a lambda) so DataLoader workers can pickle the dataset.
    return torch.tensor(target, dtype=torch.int64)


def image_folder_transform(image_size: int, *, train_transform: bool) -> transforms.Compose:
    """The usual ImageNet pipeline without normalisation: outputs ``[3, S, S]`` in [0, 1]."""
    if train_transform:
        steps = [transforms.RandomResizedCrop(image_size), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(int(image_size * 256 / 224)), transforms.CenterCrop(image_size)]
    return transforms.Compose([*steps, transforms.ToTensor()])


def image_folder_dataset(
    root: str | os.PathLike[str],
    split: str,
    image_size: int = 224,
    *,
    train_transform: bool,
) -> datasets.ImageFolder:
    """An ImageFolder at ``root/split`` (one sub-folder per class, e.g. ImageNet).

    Items are ``(x float32 [3, image_size, image_size] in [0, 1], y int64)``.  No
    mean/std normalisation: the models take [0, 1] images, and attacks need the data
    bounds to be the image bounds; see :data:`IMAGENET_MEAN` / :data:`IMAGENET_STD`.
    """
    image_size = _check_int("image_size", image_size, 1)
    if not isinstance(split, str) or not split or os.sep in split:
        raise DataError(f"expected a split folder name such as 'train' or 'val', got {split!r}")
    folder = _split_folder(root, split)
    try:
        return datasets.ImageFolder(
            str(folder),
            transform=image_folder_transform(image_size, train_transform=train_transform),
            target_transform=_as_int64,
        )
    except (FileNotFoundError, OSError) as err:
        raise DataError(
            f"expected class folders of images in {folder}, got: {_one_line(err)}"
        ) from None


def _split_folder(root: str | os.PathLike[str], split: str) -> Path:
    """``root/split``, or a one-line :class:`DataError` when it is not a folder."""
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise DataError(
            f"expected an image folder with one sub-folder per class at {folder}, "
            "got no such directory"
        )
    return folder


def image_folder_classes(root: str | os.PathLike[str]) -> list[str]:
    """The class folder names of the tree at ``root`` as ImageFolder orders them (its
    labels ``0 … k-1``), read from ``val/``; ``train/``, where it exists, must hold the
    same classes, or a label would mean one class in a split and another in the other.
    """
    splits = ["val"] + (["train"] if (Path(root).expanduser() / "train").is_dir() else [])
    found = {}
    for split in splits:
        folder = _split_folder(root, split)
        try:
            found[split] = datasets.folder.find_classes(str(folder))[0]
        except (FileNotFoundError, OSError) as err:
            raise DataError(f"expected class folders in {folder}, got: {_one_line(err)}") from None
    if "train" in found and found["train"] != found["val"]:
        extra = sorted(set(found["train"]) ^ set(found["val"]))[:3]
        raise DataError(
            f"{Path(root) / 'train'} and {Path(root) / 'val'} hold different class folders "
            f"(e.g. {', '.join(extra)}); their labels would not agree"
        )
    return found["val"]
