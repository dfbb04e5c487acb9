"""Tests of invaudit.data: spheres, MNIST-style idx data, ImageFolder, data-dir lookup.

Nothing here touches the network: the download path is exercised with a fake
torchvision downloader that writes small idx files.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from invaudit.data import (
    DATASETS,
    HOLDOUT_SEED_OFFSET,
    IMAGE_DATASETS,
    SpheresDataset,
    dataset_info,
    image_folder_dataset,
    load_image_dataset,
    read_idx,
    resolve_data_dir,
    sample_spheres,
    spheres_splits,
)
from invaudit.data import images as images_mod
from invaudit.data.spheres import CHUNK_SIZE
from invaudit.errors import DataError

SHARED_DATA = Path(__file__).parents[2] / "shared" / "data"
RAW_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


# ----------------------------------------------------------------------------- spheres


@pytest.fixture(scope="module")
def uniform_sample() -> tuple[torch.Tensor, torch.Tensor]:
    return sample_spheres(20_000, dim=100, radii=(1.0, 10.0), seed=11)


def test_spheres_radii_exact_for_every_point(uniform_sample):
    x, y = uniform_sample
    radius = torch.where(y == 0, 1.0, 10.0).double()
    assert (x.double().norm(dim=1) - radius).abs().max() < 1e-4


def test_spheres_item_types_and_radii():
    ds = SpheresDataset(10, dim=5, radii=(2.0, 3.0), seed=1)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (5,)
        assert y.dtype == torch.int64 and y.dim() == 0
        assert abs(x.double().norm().item() - (2.0, 3.0)[int(y)]) < 1e-4


def test_spheres_balance_exact(uniform_sample):
    _, y = uniform_sample
    assert int((y == 1).sum()) == int((y == 0).sum()) == 10_000
    _, y_odd = sample_spheres(7, dim=3, seed=0)
    assert int((y_odd == 0).sum()) == 4 and int((y_odd == 1).sum()) == 3


def test_spheres_direction_roughly_uniform(uniform_sample):
    x, _ = uniform_sample
    u = x.double() / x.double().norm(dim=1, keepdim=True)
    assert u.mean(dim=0).norm() < 0.05
    # Second moments too: E[u_j^2] = 1/dim for every coordinate of a uniform direction.
    assert ((u**2).mean(dim=0) * u.shape[1] - 1).abs().max() < 0.1


def test_spheres_per_index_is_deterministic_in_any_order():
    a = SpheresDataset(1000, dim=20, seed=5)
    b = SpheresDataset(1000, dim=20, seed=5)
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:200].tolist()
    first = {i: a[i][0] for i in order}
    for i in reversed(order):
        assert torch.equal(b[i][0], first[i])


def test_spheres_bulk_equals_per_index():
    n = 3 * CHUNK_SIZE + 17  # a partial last chunk
    ds = SpheresDataset(n, dim=30, radii=(1.0, 1.3), seed=9)
    x_bulk, y_bulk = ds.tensors()
    x_items = torch.stack([ds[i][0] for i in range(n)])
    y_items = torch.stack([ds[i][1] for i in range(n)])
    assert torch.equal(x_bulk, x_items) and torch.equal(y_bulk, y_items)
    assert torch.equal(x_bulk, sample_spheres(n, 30, (1.0, 1.3), 9)[0])


def test_spheres_sample_does_not_depend_on_n():
    assert torch.equal(
        sample_spheres(300, dim=8, seed=2)[0], sample_spheres(1000, dim=8, seed=2)[0][:300]
    )


def test_spheres_different_seeds_differ():
    x0, _ = sample_spheres(500, dim=10, seed=0)
    x1, _ = sample_spheres(500, dim=10, seed=1)
    assert not (x0 == x1).all(dim=1).any()


def test_spheres_are_lazy_and_index_like_a_sequence():
    start = time.perf_counter()
    ds = SpheresDataset(500_000)
    assert time.perf_counter() - start < 0.1
    assert torch.equal(ds[-1][0], ds[499_999][0])
    with pytest.raises(IndexError):
        ds[500_000]


def test_spheres_splits_use_disjoint_streams():
    train, holdout = spheres_splits(dim=10, seed=3, n_train=400, n_test=200)
    assert (len(train), len(holdout)) == (400, 200)
    assert holdout.seed == 3 + HOLDOUT_SEED_OFFSET
    x_train, _ = train.tensors()
    x_hold, _ = holdout.tensors()
    assert not (x_train[:200] == x_hold).all(dim=1).any()
    with pytest.raises(DataError, match="seed"):
        spheres_splits(seed=HOLDOUT_SEED_OFFSET)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": -3},
        {"n": 2.5},
        {"n": True},
        {"dim": 1},
        {"radii": (0.0, 1.0)},
        {"radii": (-1.0, 1.0)},
        {"radii": (2.0, 1.0)},
        {"radii": (1.0, 1.0)},
        {"radii": (1.0, float("inf"))},
        {"radii": (1.0, 2.0, 3.0)},
        {"radii": "ab"},
        {"seed": -1},
    ],
)
def test_spheres_bad_args_raise_data_error(kwargs):
    args = {"n": 10, "dim": 4, "radii": (1.0, 2.0), "seed": 0, **kwargs}
    with pytest.raises(DataError) as info:
        SpheresDataset(**args)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError):
        sample_spheres(**args)


# ------------------------------------------------------------------- MNIST-style data


def _shared_dir(folder: str) -> Path:
    raw = SHARED_DATA / folder / "raw"
    if not all((raw / name).is_file() for name in RAW_NAMES):
        pytest.skip(f"../shared/data not present: expected {', '.join(RAW_NAMES)} in {raw}")
    return SHARED_DATA


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: any write shows up here."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def readonly_mnist_dir(tmp_path_factory):
    src = _shared_dir("MNIST") / "MNIST" / "raw"
    root = tmp_path_factory.mktemp("readonly-data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_NAMES:
        shutil.copyfile(src / name, raw / name)
    paths = [root, root / "MNIST", raw, *raw.iterdir()]
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield root
    for p in paths:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture(scope="module")
def mnist(readonly_mnist_dir):
    before = _snapshot(readonly_mnist_dir)
    splits = {
        split: load_image_dataset("mnist", split, readonly_mnist_dir, train_transform=False)
        for split in ("train", "test")
    }
    # As root, chmod alone does not stop writes; the snapshot proves nothing was written.
    assert _snapshot(readonly_mnist_dir) == before
    return splits


@pytest.fixture(scope="module")
def fashion():
    root = _shared_dir("FashionMNIST")
    return {
        split: load_image_dataset("fashion-mnist", split, root, train_transform=False)
        for split in ("train", "test")
    }


@pytest.mark.parametrize("which", ["mnist", "fashion"])
def test_idx_datasets_sizes_labels_and_values(which, request):
    splits = request.getfixturevalue(which)
    assert (len(splits["train"]), len(splits["test"])) == (60_000, 10_000)
    for ds in splits.values():
        assert ds.targets.dtype == torch.int64
        assert set(ds.targets.unique().tolist()) == set(range(10))
        x, y = ds[123]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and 0 <= int(y) <= 9
        batch = torch.stack([ds[i][0] for i in range(0, len(ds), 997)])
        assert batch.min() >= 0.0 and batch.max() <= 1.0 and batch.max() > 0.9
        # No dequantisation off the training transform: exact grey levels k / 255.
        assert torch.equal(batch * 255, (batch * 255).round())


def test_test_split_is_the_real_mnist_test_set(mnist):
    # First labels of the MNIST test file, as published.
    assert mnist["test"].targets[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def _shifts(image: torch.Tensor, max_shift: int) -> list[torch.Tensor]:
    padded = torch.nn.functional.pad(image, (max_shift,) * 4)
    size = image.shape[-1]
    span = range(2 * max_shift + 1)
    return [padded[..., i : i + size, j : j + size] for i in span for j in span]


def test_training_transform_shifts_and_dequantises_within_bounds(readonly_mnist_dir, mnist):
    torch.manual_seed(0)
    plain = mnist["train"]
    aug = load_image_dataset(
        "mnist", "train", readonly_mnist_dir, train_transform=True, limit=40, seed=4
    )
    changed = 0
    for k, original_index in enumerate(aug.indices.tolist()):
        x, y = aug[k]
        assert x.shape == (1, 28, 28) and int(y) == int(plain.targets[original_index])
        assert x.min() >= 0.0 and x.max() <= 1.0
        # x = (byte + u) / 256 for the bytes of some shift of the original image.
        byte = plain.data[original_index].unsqueeze(0).double()
        gaps = [x.double() * 256 - shifted for shifted in _shifts(byte, 3)]
        assert any(((g >= -1e-3) & (g <= 1 + 1e-3)).all() for g in gaps)
        changed += int(not torch.equal(x, plain[original_index][0]))
    assert changed == len(aug)
    # Dequantised: values fall between the 1/255 grey levels.
    assert not torch.equal(x * 255, (x * 255).round())


def test_limit_is_a_seeded_subset(readonly_mnist_dir, mnist):
    def load(seed: int):
        return load_image_dataset(
            "mnist", "test", readonly_mnist_dir, train_transform=False, limit=500, seed=seed
        )

    a, b, c = load(1), load(1), load(2)
    assert len(a) == 500
    assert torch.equal(a.indices, b.indices) and torch.equal(a.data, b.data)
    assert not torch.equal(a.indices, c.indices)
    assert torch.equal(a.data, mnist["test"].data[a.indices])
    assert torch.equal(a.targets, mnist["test"].targets[a.indices])
    assert torch.equal(a[0][0], mnist["test"][int(a.indices[0])][0])


def test_limit_larger_than_split_keeps_everything(readonly_mnist_dir):
    ds = load_image_dataset("mnist", "test", readonly_mnist_dir, train_transform=False, limit=10**6)
    assert len(ds) == 10_000


# ------------------------------------------- idx files, missing data, download path


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)


def _write_fake_split(raw: Path, split: str, n: int, gz: bool = True) -> np.ndarray:
    raw.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    _write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images)
    _write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)
    return images


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_gz_and_plain(tmp_path, gz):
    images = _write_fake_split(tmp_path, "test", 5, gz=gz)
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    assert torch.equal(read_idx(tmp_path / name), torch.from_numpy(images))


def test_read_idx_rejects_corrupt_files(tmp_path):
    good = tmp_path / "good"
    _write_idx(good, np.zeros((4, 28, 28), dtype=np.uint8))
    (tmp_path / "short").write_bytes(good.read_bytes()[:-10])
    (tmp_path / "header").write_bytes(b"\x01\x02\x03\x04" + good.read_bytes()[4:])
    (tmp_path / "notgz.gz").write_bytes(good.read_bytes())
    for name in ("short", "header", "notgz.gz"):
        with pytest.raises(DataError) as info:
            read_idx(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)


def test_missing_dir_without_download_names_the_dir(tmp_path):
    missing = tmp_path / "no-data-here"
    with pytest.raises(DataError) as info:
        load_image_dataset("fashion-mnist", "train", missing, train_transform=False)
    message = str(info.value)
    assert str(missing / "FashionMNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message and "\n" not in message
    assert not missing.exists()


class _FakeDownloader:
    calls: list[tuple[str, bool]] = []
    fail = False

    def __init__(self, root: str, train: bool, download: bool) -> None:
        type(self).calls.append((root, train))
        if type(self).fail:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried a mirror")
        raw = Path(root) / "MNIST" / "raw"
        _write_fake_split(raw, "train", 30)
        _write_fake_split(raw, "test", 20)


@pytest.fixture
def fake_download(monkeypatch):
    _FakeDownloader.calls = []
    _FakeDownloader.fail = False
    source = images_mod._IdxSource("MNIST", _FakeDownloader, IMAGE_DATASETS["mnist"].classes)
    monkeypatch.setitem(IMAGE_DATASETS, "mnist", source)
    return _FakeDownloader


def test_download_only_when_missing_and_asked(tmp_path, fake_download):
    with pytest.raises(DataError):
        load_image_dataset("mnist", "test", tmp_path, train_transform=False)
    assert fake_download.calls == []
    ds = load_image_dataset("mnist", "test", tmp_path, train_transform=False, download=True)
    assert len(ds) == 20 and fake_download.calls == [(str(tmp_path), False)]
    load_image_dataset("mnist", "train", tmp_path, train_transform=False, download=True)
    assert len(fake_download.calls) == 1  # files present: no second download


def test_failed_download_is_one_line_data_error(tmp_path, fake_download):
    fake_download.fail = True
    with pytest.raises(DataError) as info:
        load_image_dataset("mnist", "train", tmp_path, train_transform=False, download=True)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "cifar10"},
        {"split": "val"},
        {"limit": 0},
        {"limit": -5},
        {"seed": -1},
    ],
)
def test_bad_image_dataset_args(tmp_path, kwargs):
    _write_fake_split(tmp_path / "MNIST" / "raw", "test", 5)
    args = {"name": "mnist", "split": "test", "data_dir": tmp_path, **kwargs}
    with pytest.raises(DataError):
        load_image_dataset(**args, train_transform=False)


# --------------------------------------------------------------------------- ImageFolder


@pytest.fixture
def image_folder(tmp_path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        folder = tmp_path / "train" / cls
        folder.mkdir(parents=True)
        for k in range(3):
            pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{k}.png")
    shutil.copytree(tmp_path / "train", tmp_path / "val")
    return tmp_path


@pytest.mark.parametrize(("split", "train_transform"), [("train", True), ("val", False)])
def test_image_folder_shapes_and_bounds(image_folder, split, train_transform):
    ds = image_folder_dataset(image_folder, split, image_size=32, train_transform=train_transform)
    assert len(ds) == 6 and ds.classes == ["cat", "dog"]
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert y.dtype == torch.int64 and int(y) == i // 3


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(DataError) as info:
        image_folder_dataset(tmp_path, "train", train_transform=False)
    assert str(tmp_path / "train") in str(info.value)
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError):
        image_folder_dataset(tmp_path, "val", train_transform=False)


# ------------------------------------------------------------- descriptions and lookup


def test_dataset_info():
    assert DATASETS["mnist"] == {
        "input_shape": (1, 28, 28),
        "num_classes": 10,
        "bounds": (0.0, 1.0),
    }
    assert DATASETS["fashion-mnist"]["input_shape"] == (1, 28, 28)
    assert DATASETS["imagenet"]["input_shape"] == (3, 224, 224)
    assert DATASETS["spheres"]["input_shape"] == (100,)
    spheres = dataset_info("spheres", dim=7, radii=(1.0, 1.3))
    assert spheres == {"input_shape": (7,), "num_classes": 2, "bounds": (-1.3, 1.3)}
    assert dataset_info("imagenet", image_size=32)["input_shape"] == (3, 32, 32)
    for name, options in [("svhn", {}), ("mnist", {"dim": 3}), ("spheres", {"dim": 1})]:
        with pytest.raises(DataError):
            dataset_info(name, **options)


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INVAUDIT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir("~/d") == tmp_path / "home" / "d"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("INVAUDIT_DATA")
    assert resolve_data_dir(None) == tmp_path / "xdg" / "invaudit" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir(None) == tmp_path / "home" / ".cache" / "invaudit" / "data"
    assert not (tmp_path / "home").exists()


def test_shared_data_is_not_written(mnist, fashion):
    # The fixtures above loaded from SHARED_DATA (Fashion-MNIST) directly.
    assert sorted(os.listdir(SHARED_DATA / "FashionMNIST")) == ["raw"]
    assert sorted(os.listdir(SHARED_DATA / "FashionMNIST" / "raw")) == sorted(RAW_NAMES)
