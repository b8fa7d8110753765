"""Polyphonic music: next-frame prediction on an 88-key piano roll (``data=music``).

Sources (``data.source``):

``music21`` (default, offline)
    The four-part Bach chorales bundled with music21 (``music21.corpus.chorales.Iterator``: the
    371 of Riemenschneider's numbering, which name 350 distinct files because the collection
    repeats some harmonisations; each file is used once, so no piece sits in two splits). The
    same repertoire as the JSB Chorales set of Boulanger-Lewandowski et al. (2012), but parsed
    here from music21's files, so *not* the identical set of sequences. Each chorale becomes an
    88-key binary piano roll (MIDI 21 = A0 .. 108 = C8): frame k covers [k q, (k + 1) q) quarter
    notes with ``q = data.quantization`` (1.0 = quarter notes, as Boulanger-Lewandowski 2012; 0.5 =
    eighth notes), and a key is on in frame k when a note of that pitch is sounding at the frame's
    start (k q). Repeats are not expanded; ties merge into one sustained note. The pieces are split
    once, seeded (``data.split_seed``), 60/20/20 (210/70/70 of 350) and the split is saved
    in the cache. Parsing all 350 takes ~40 s on 2 cores the first time; the note events are cached
    so every later run (and every quantisation) loads in a fraction of a second.
``jsb_pickle`` (needs the network, or a local copy at ``data.pickle_path``)
    Boulanger-Lewandowski's pickled "JSB Chorales.pickle" (229/76/77 pieces, quarter-note frames,
    each frame the tuple of sounding MIDI pitches), the set behind the published numbers
    (Chung et al. 2014 test NLL: tanh 9.10, GRU 8.54, LSTM 8.67).

Task (``step_multilabel``): the input at step t is frame t, the target frame t + 1; a piece of F
frames gives a sequence of F - 1 steps; batches are right-padded with ``lengths``. The loss and
``nll`` are the Bernoulli negative log-likelihood summed over the 88 keys and averaged over the
valid frames; ``acc`` is frame-level accuracy TP / (TP + FP + FN).

Baselines on the test pieces, logged as ``baseline/*``: ``loss`` = ``nll`` of independent keys
with the training set's per-key frequencies, and ``acc`` of repeating the current frame.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.config.errors import check_choice
from rnnlab.data.base import DataSpec, SequenceDataModule
from rnnlab.data.sources import (
    Cache,
    SourceUnavailable,
    download_url,
    log,
)
from rnnlab.data.splits import (
    check_fractions,
    check_sizes,
    length_stats,
    random_split,
    subsample,
)
from rnnlab.model.metrics import FrameAccuracy

SOURCES = ("music21", "jsb_pickle")
LOWEST, KEYS = 21, 88  # A0 .. C8
CHORALES = 371  # Riemenschneider numbers in music21's chorale iterator
UNIQUE_CHORALES = 350  # distinct files among them (the pieces used)
JSB_URL = "http://www-etud.iro.umontreal.ca/~boulanni/JSB%20Chorales.pickle"
# The download's sha256, checked when set. Not pinned: no trustworthy source for the file's hash
# could be reached when this was written (the host serves plain http and publishes none, and
# none was found in the projects that use the file), and a hash taken from an unverified
# download would pin whatever that download was. What keeps the file from running code is the
# unpickler (load_jsb_pickle: builtin containers and numbers only), not this.
JSB_SHA256: str | None = None
SPLITS = ("train", "val", "test")
OFFLINE_HINT = "the offline source is data.source=music21 (the Bach chorales bundled with music21)"


# ------------------------------------------------------------------------------ parsing
def chorale_names(limit: int | None = None) -> list[str]:
    """Corpus paths of music21's Bach chorales in Riemenschneider order, each file once, the
    first ``limit``. The iterator's 371 numbers name 350 distinct files: Riemenschneider's
    collection repeats some harmonisations, and a piece in two splits would leak."""
    return list(dict.fromkeys(riemenschneider_files()))[:limit]


def riemenschneider_files() -> list[str]:
    """The file of each of the 371 Riemenschneider numbers (with the repeats)."""
    try:
        from music21 import corpus
    except ImportError:
        raise SourceUnavailable("data.source=music21 needs music21 (it bundles the Bach "
                                "chorales): pip install music21") from None
    return [str(name) for name in corpus.chorales.Iterator(returnType="filename")]


def parse_notes(name: str) -> tuple[np.ndarray, float]:
    """Note events of one corpus piece: (k, 3) [midi, start, end] in quarter notes, and its
    length in quarter notes."""
    from music21 import corpus

    score = corpus.parse(name)
    flat = score.flatten()
    events = []
    for element in flat.notes:
        start = float(element.offset)
        end = start + float(element.quarterLength)
        if end <= start:  # grace notes have no duration
            continue
        for pitch in element.pitches:
            events.append((pitch.midi, start, end))
    return np.asarray(events, dtype=np.float64).reshape(-1, 3), float(flat.highestTime)


def parse_chorales(names: list[str], progress: Callable[[int, int], None] | None = None,
                   workers: int | None = None) -> dict[str, np.ndarray]:
    """All pieces' note events, concatenated: ``events`` (N, 3), ``offsets`` (P + 1,) into it,
    ``durations`` (P,) in quarter notes, ``names`` (P,). Parsed in ``workers`` processes
    (default: one per CPU core), in order."""
    workers = workers or os.cpu_count() or 1
    chunks, offsets, durations = [], [0], []
    if workers > 1 and len(names) > 8:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(min(workers, len(names)), mp_context=context) as pool:
            parsed = pool.map(parse_notes, names, chunksize=4)
            for index, (events, duration) in enumerate(parsed):
                chunks.append(events)
                offsets.append(offsets[-1] + len(events))
                durations.append(duration)
                if progress:
                    progress(index + 1, len(names))
    else:
        for index, name in enumerate(names):
            events, duration = parse_notes(name)
            chunks.append(events)
            offsets.append(offsets[-1] + len(events))
            durations.append(duration)
            if progress:
                progress(index + 1, len(names))
    return {"events": np.concatenate(chunks) if chunks else np.zeros((0, 3)),
            "offsets": np.asarray(offsets, dtype=np.int64),
            "durations": np.asarray(durations, dtype=np.float64),
            "names": np.asarray(names, dtype=np.str_)}


def piano_roll(events: np.ndarray, duration: float, quantization: float) -> np.ndarray:
    """(frames, 88) uint8: key on in frame k when a note of it sounds at time k * quantization."""
    frames = max(1, math.ceil(duration / quantization - 1e-9))
    roll = np.zeros((frames, KEYS), dtype=np.uint8)
    for midi, start, end in events:
        key = int(midi) - LOWEST
        if not 0 <= key < KEYS:
            continue
        first = math.ceil(start / quantization - 1e-9)
        last = math.ceil(end / quantization - 1e-9)  # exclusive
        roll[first:min(last, frames), key] = 1
    return roll


def frames_to_roll(frames) -> np.ndarray:
    """A pickled JSB piece (a list of tuples of MIDI pitches) as an (F, 88) uint8 roll."""
    roll = np.zeros((len(frames), KEYS), dtype=np.uint8)
    for index, pitches in enumerate(frames):
        for midi in pitches:
            if 0 <= int(midi) - LOWEST < KEYS:
                roll[index, int(midi) - LOWEST] = 1
    return roll


# ----------------------------------------------------------------------- the JSB pickle
class _DataOnlyUnpickler(pickle.Unpickler):
    """Admits the builtin containers and numbers only: a pickle that names any class or function
    (what a payload needs to run code) is refused. "JSB Chorales.pickle" needs none: a dict of
    lists of pieces, each a list of tuples of MIDI pitches (ints), written by Python 2."""

    # the containers an older pickle protocol builds by calling their class
    CONTAINERS = {("builtins", "set"): set, ("builtins", "frozenset"): frozenset}

    def find_class(self, module: str, name: str):
        if (module, name) in self.CONTAINERS:  # (Python 2's __builtin__ arrives as builtins)
            return self.CONTAINERS[module, name]
        raise pickle.UnpicklingError(f"it names {module}.{name}")


def load_jsb_pickle(path: str | os.PathLike) -> dict[str, list]:
    """"JSB Chorales.pickle" ({"train", "valid", "test"} -> pieces), unpickled without running
    anything; ValueError (one line) for a file that names code or is not that dict."""
    try:
        with open(path, "rb") as handle:
            data = _DataOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            KeyError, AttributeError, MemoryError) as error:
        raise ValueError(f"data.source=jsb_pickle: {path} is not the JSB Chorales pickle "
                         f"({str(error).splitlines()[0] if str(error) else type(error).__name__}"
                         "; only builtin containers and numbers are read): refused") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("train", "valid", "test")):
        raise ValueError(f"data.source=jsb_pickle: {path} is not the JSB Chorales pickle (a "
                         "dict of train, valid and test lists)")
    return data


def check_sha256(path: str | os.PathLike, expected: str | None) -> None:
    """ValueError (one line) unless the file's sha256 is ``expected`` (None: nothing pinned)."""
    if expected is None:
        return
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ValueError(f"data.source=jsb_pickle: {path} has sha256 {digest.hexdigest()}, not "
                         f"the pinned {expected}: delete it to download it again")


# ------------------------------------------------------------------------------ dataset
class RollDataset(Dataset):
    """Pieces as piano rolls; item = (frames[:-1], frames[1:]) as float tensors."""

    def __init__(self, rolls: list[np.ndarray], names: list[str]):
        self.rolls = [torch.from_numpy(np.ascontiguousarray(r)) for r in rolls]
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.rolls)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        roll = self.rolls[index].float()
        return {"x": roll[:-1], "y": roll[1:]}

    @property
    def lengths(self) -> list[int]:
        return [len(r) - 1 for r in self.rolls]


def roll_collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    pad = torch.nn.utils.rnn.pad_sequence
    return {"x": pad([e["x"] for e in examples], batch_first=True),
            "y": pad([e["y"] for e in examples], batch_first=True),
            "lengths": torch.tensor([len(e["x"]) for e in examples], dtype=torch.int64)}


def music_baselines(train: list[np.ndarray], test: list[np.ndarray]) -> dict[str, float]:
    """Independent keys at the training frequencies (nll = loss) and repeat-the-frame (acc)."""
    train_targets = np.concatenate([r[1:] for r in train]).astype(np.float64)
    p = np.clip(train_targets.mean(0), 1e-4, 1 - 1e-4)
    targets = np.concatenate([r[1:] for r in test]).astype(np.float64)
    nll = -(targets * np.log(p) + (1 - targets) * np.log1p(-p)).sum(1).mean()
    previous = np.concatenate([r[:-1] for r in test]).astype(bool)
    # the task's own metric, so the baseline and the models' acc are the same number
    acc = FrameAccuracy()(torch.from_numpy(previous).float(), torch.from_numpy(targets))
    return {"loss": float(nll), "nll": float(nll), "acc": float(acc)}


# --------------------------------------------------------------------------- datamodule
class MusicDataModule(SequenceDataModule):
    def __init__(self, name: str = "music", source: str = "music21", data_dir: str | None = None,
                 quantization: float = 1.0, limit_pieces: int | None = None,
                 pickle_path: str | None = None, pickle_url: str = JSB_URL,
                 val_fraction: float = 0.2, test_fraction: float = 0.2, split_seed: int = 0,
                 train_size: int | None = None, val_size: int | None = None,
                 test_size: int | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        check_choice("data.source", source, SOURCES)
        if not quantization > 0:
            raise ValueError(f"data.quantization (quarter notes per frame) must be > 0, "
                             f"got {quantization}")
        if source == "jsb_pickle" and quantization != 1.0:
            raise ValueError("data.quantization must be 1.0 with data.source=jsb_pickle "
                             "(its frames are quarter notes)")
        if limit_pieces is not None and limit_pieces < 3:
            raise ValueError(f"data.limit_pieces must be >= 3 or null, got {limit_pieces}")
        check_fractions("data", val_fraction, test_fraction)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        check_sizes("data", self.sizes)
        self.source, self.quantization, self.limit_pieces = source, quantization, limit_pieces
        self.pickle_path, self.pickle_url = pickle_path, pickle_url
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_seed = split_seed
        self.cache = Cache(data_dir, "music")
        self._baselines: dict[str, float] = {}
        self.progress: Callable[[int, int], None] | None = None  # set by scripts/prepare_data.py

    # --------------------------------------------------------------------------- music21
    def chorale_notes(self) -> dict[str, np.ndarray]:
        """The cached note events of the chorales (all 350, or the first ``limit_pieces``)."""
        names = chorale_names()
        full = "chorales-notes.npz"
        if self.limit_pieces is None or self.limit_pieces >= len(names) \
                or self.cache.state(full, {"pieces": len(names), "version": 1}) == "ok":
            notes = self.cache.ensure_npz(
                full, lambda: parse_chorales(names, self.progress),
                params={"pieces": len(names), "version": 1},
                what=f"{len(names)} Bach chorales from music21's corpus "
                     "(about a minute of CPU, once)")
            return _first_pieces(notes, self.limit_pieces)
        subset = names[: self.limit_pieces]
        return self.cache.ensure_npz(
            f"chorales-notes-first{self.limit_pieces}.npz",
            lambda: parse_chorales(subset, self.progress),
            params={"pieces": len(subset), "version": 1},
            what=f"the first {len(subset)} Bach chorales from music21's corpus")

    def _music21_splits(self) -> dict[str, tuple[list[np.ndarray], list[str]]]:
        notes = self.chorale_notes()
        names = [str(n) for n in notes["names"]]
        rolls = [piano_roll(notes["events"][notes["offsets"][i]:notes["offsets"][i + 1]],
                             float(notes["durations"][i]), self.quantization)
                 for i in range(len(names))]
        split = self.cache.ensure_json(
            f"split-seed{self.split_seed}-n{len(names)}.json",
            lambda: {s: [names[i] for i in idx] for s, idx in random_split(
                len(names), self.val_fraction, self.test_fraction, self.split_seed).items()},
            params={"pieces": names, "val_fraction": self.val_fraction,
                    "test_fraction": self.test_fraction, "split_seed": self.split_seed})
        position = {n: i for i, n in enumerate(names)}
        return {s: ([rolls[position[n]] for n in split[s]], list(split[s])) for s in SPLITS}

    # ------------------------------------------------------------------------ jsb pickle
    def _pickle_splits(self) -> dict[str, tuple[list[np.ndarray], list[str]]]:
        if self.pickle_path:
            path = Path(self.pickle_path).expanduser()
            if not path.is_file():
                raise ValueError(f"data.pickle_path={self.pickle_path!r} is not a file")
        else:
            path = download_url(self.pickle_url, self.cache, "JSB Chorales.pickle",
                                 offline_hint=OFFLINE_HINT)
            check_sha256(path, JSB_SHA256 if self.pickle_url == JSB_URL else None)
        data = load_jsb_pickle(path)
        names = {"train": "train", "val": "valid", "test": "test"}
        return {s: ([frames_to_roll(p) for p in data[key]],
                    [f"jsb-{key}-{i}" for i in range(len(data[key]))])
                for s, key in names.items()}

    # ---------------------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        log.info("preparing the %s data: the pieces' piano rolls", self.source)
        parts = self._music21_splits() if self.source == "music21" else self._pickle_splits()
        chosen = {}
        for split, (rolls, names) in parts.items():
            rolls = [r for r in rolls if len(r) >= 2]  # a one-frame piece has no next frame
            keep = subsample(len(rolls), self.sizes[split], self.split_seed, split)
            chosen[split] = ([rolls[i] for i in keep], [names[i] for i in keep])
        self.splits = {split: RollDataset(*chosen[split]) for split in SPLITS}
        self._baselines = music_baselines(chosen["train"][0], chosen["test"][0])

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(task_kind="step_multilabel", input_size=KEYS, output_size=KEYS,
                        baselines=dict(self._baselines))

    def collate(self, examples):
        return roll_collate(examples)

    def summary(self) -> dict:
        self.setup()
        out = {"source": self.source, "quantization": self.quantization, "splits": {}}
        for split, ds in self.splits.items():
            rolls = np.concatenate([r.numpy() for r in ds.rolls])
            out["splits"][split] = {
                "pieces": len(ds), "frames": int(sum(len(r) for r in ds.rolls)),
                "length": length_stats(ds.lengths),
                "keys_on": float(rolls.sum(1).mean()),
                "midi_range": [int(LOWEST + np.flatnonzero(rolls.any(0)).min()),
                                   int(LOWEST + np.flatnonzero(rolls.any(0)).max())]}
        out["baselines"] = dict(self._baselines)
        return out


def _first_pieces(notes: dict[str, np.ndarray], limit: int | None) -> dict[str, np.ndarray]:
    if limit is None or limit >= len(notes["names"]):
        return notes
    offsets = notes["offsets"][: limit + 1]
    return {"events": notes["events"][: offsets[-1]], "offsets": offsets,
            "durations": notes["durations"][:limit], "names": notes["names"][:limit]}
