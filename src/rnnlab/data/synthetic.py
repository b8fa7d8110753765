"""The synthetic long-memory tasks, exactly as DESIGN.md §3 defines them.

Copy memory (Arjovsky, Shah & Bengio 2016, after Hochreiter & Schmidhuber 1997)
    input, length T + 20: 10 symbols drawn uniformly from {1..8}, T - 1 blanks (0), the
    delimiter (9), 10 blanks. target: T + 10 blanks, then the 10 symbols. Cross-entropy over all
    T + 20 steps. A memoryless strategy (blanks, then uniform guesses) scores 10 ln(8) / (T + 20).

Adding problem (Le, Jaitly & Hinton 2015; the uRNN form of Arjovsky et al. 2016)
    input, length T, two channels: values ~ U(0, 1) and a marker channel with exactly one 1 in
    each half of the sequence. target: the sum of the two marked values. MSE. Always predicting 1
    scores Var(U1 + U2) = 1/6.

Selective copy (Gu & Dao 2023, the Mamba paper's form)
    input, length T + K: K data tokens drawn uniformly from {1..V} at K random positions (kept in
    order) of T noise tokens (0), then K recall markers (V + 1). target: the K data tokens in
    order, at the K marker steps. Cross-entropy and accuracy over those K steps only (the other
    targets are never scored). A memoryless strategy (uniform guesses) scores loss ln(V) and
    accuracy 1/V. Gu & Dao use T = 4096, K = 16, V = 16; the defaults here are CPU-sized.

Parity (state tracking; Grazzi et al. 2024, Merrill et al. 2024)
    input, length T: bits drawn uniformly from {0, 1}. target: the running parity
    y_t = x_1 ⊕ ... ⊕ x_t at every step. Cross-entropy and accuracy over all T steps. Each y_t is
    a fair coin given x_t alone, so a memoryless strategy scores loss ln 2 and accuracy 1/2. A
    recurrence h_t = a_t ⊙ h_{t−1} + b_t whose coefficients a_t lie in (0, 1) (minGRU, minLSTM,
    Mamba) cannot flip its state with the input and provably cannot track parity at arbitrary
    length; a nonlinear recurrence (tanh RNN, GRU, LSTM) can, with two states.

Each split is drawn from its own generator seeded from (seed, split), so train, val and test are
fresh samples and a run is reproducible from its seed alone.
"""

from __future__ import annotations

import math

import torch

from rnnlab.data.base import DataSpec, SequenceDataModule, TensorDictDataset
from rnnlab.data.memory import check_data_memory
from rnnlab.data.sources import log

# Making the data is announced (one line) from this many time steps on (examples x data.seq_len):
# about 17 ns a step on the 2-core machine of docs/benchmarks.md, so 0.3 s here and about a
# second on a slower one; below it (the quickstart's 12,800 x 50) it takes a blink.
ANNOUNCE_STEPS = 20_000_000

SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}
BLANK, DELIMITER = 0, 9


def _generator(seed: int, split: str) -> torch.Generator:
    # Spread splits far apart so neighbouring seeds never share a split's stream.
    return torch.Generator().manual_seed(seed * 1000 + SPLIT_OFFSETS[split])


def make_copy(n: int, blanks: int, generator: torch.Generator, num_symbols: int = 8,
              copy_length: int = 10) -> dict[str, torch.Tensor]:
    """Copy-memory examples: x, y of shape (n, blanks + 2 * copy_length)."""
    length = blanks + 2 * copy_length
    symbols = torch.randint(1, num_symbols + 1, (n, copy_length), generator=generator)
    x = torch.full((n, length), BLANK, dtype=torch.int64)
    x[:, :copy_length] = symbols
    x[:, copy_length + blanks - 1] = DELIMITER  # after T - 1 blanks
    y = torch.full((n, length), BLANK, dtype=torch.int64)
    y[:, -copy_length:] = symbols
    score_mask = torch.zeros((n, length), dtype=torch.bool)
    score_mask[:, -copy_length:] = True
    return {"x": x, "y": y, "score_mask": score_mask}


def make_selective_copy(n: int, noise_length: int, generator: torch.Generator,
                        num_symbols: int = 8, copy_length: int = 4) -> dict[str, torch.Tensor]:
    """Selective-copy examples: x, y of shape (n, noise_length + copy_length)."""
    length = noise_length + copy_length
    symbols = torch.randint(1, num_symbols + 1, (n, copy_length), generator=generator)
    # K distinct positions among the first T, in increasing order
    positions = torch.rand((n, noise_length), generator=generator).topk(copy_length, 1).indices
    positions = positions.sort(1).values
    x = torch.zeros((n, length), dtype=torch.int64)
    x.scatter_(1, positions, symbols)
    x[:, noise_length:] = num_symbols + 1  # recall markers
    y = torch.zeros((n, length), dtype=torch.int64)
    y[:, noise_length:] = symbols
    recall = torch.zeros((n, length), dtype=torch.bool)
    recall[:, noise_length:] = True
    return {"x": x, "y": y, "score_mask": recall, "loss_mask": recall}


def make_adding(n: int, length: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Adding-problem examples: x (n, length, 2), y (n, 1)."""
    values = torch.rand((n, length), generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    markers = torch.zeros((n, length))
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = (values[rows, first] + values[rows, second]).unsqueeze(-1)
    return {"x": x, "y": y}


def make_parity(n: int, length: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Parity examples: x (n, length) bits, y (n, length) their running parity."""
    x = torch.randint(0, 2, (n, length), generator=generator)
    return {"x": x, "y": x.cumsum(1) % 2}


class _SyntheticDataModule(SequenceDataModule):
    # The shortest data.seq_len the task is defined for, and what seq_len counts (for the error).
    min_seq_len = 1
    seq_len_is = "the sequence length"
    task = ""  # the generator's name in rnnlab.data.memory (what its tensors take)

    def __init__(self, seq_len: int, train_size: int, val_size: int, test_size: int, **kwargs):
        if seq_len < self.min_seq_len:
            raise ValueError(f"data.seq_len ({self.seq_len_is}) must be >= {self.min_seq_len}, "
                             f"got {seq_len}")
        super().__init__(**kwargs)
        self.seq_len = seq_len
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        for split, size in self.sizes.items():
            if size < 1:
                raise ValueError(f"data.{split}_size must be a positive integer, got {size}")

    def _check_memory(self) -> None:
        """Refuse, in one line, data that would not fit in memory (rnnlab.data.memory): before
        any of it is made. Each subclass calls it once its own settings are set."""
        check_data_memory(self.task, self.seq_len, self.sizes, getattr(self, "copy_length", 0))

    def _make(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            examples = sum(self.sizes.values())
            if examples * self.seq_len >= ANNOUNCE_STEPS:
                log.info("making the %s data: %s sequences, data.seq_len=%d", self.task,
                         f"{examples:,}", self.seq_len)
            self.splits = {
                split: TensorDictDataset(**self._make(size, _generator(self.seed, split)))
                for split, size in self.sizes.items()
            }


class CopyDataModule(_SyntheticDataModule):
    seq_len_is = "the number of blanks T"
    task = "copy"

    def __init__(self, name: str = "copy", seq_len: int = 10, num_symbols: int = 8,
                 copy_length: int = 10, **kwargs):
        if not 1 <= num_symbols <= 8:
            raise ValueError(f"data.num_symbols must be in 1..8, got {num_symbols}")
        super().__init__(name=name, seq_len=seq_len, **kwargs)
        self.num_symbols = num_symbols
        self.copy_length = copy_length
        self._check_memory()

    def _make(self, n, generator):
        return make_copy(n, self.seq_len, generator, self.num_symbols, self.copy_length)

    @property
    def spec(self) -> DataSpec:
        length = self.seq_len + 2 * self.copy_length
        memoryless = self.copy_length * math.log(self.num_symbols) / length
        return DataSpec(
            task_kind="step_classification", vocab_size=DELIMITER + 1,
            output_size=self.num_symbols + 1,
            baselines={"loss": memoryless, "acc": 1.0 / self.num_symbols},
        )


class SelectiveCopyDataModule(_SyntheticDataModule):
    task = "selective_copy"

    def __init__(self, name: str = "selective_copy", seq_len: int = 64, num_symbols: int = 8,
                 copy_length: int = 4, **kwargs):
        if copy_length < 1:
            raise ValueError(f"data.copy_length must be >= 1, got {copy_length}")
        if seq_len < copy_length:
            raise ValueError(f"data.seq_len (the noise length T) must be >= data.copy_length="
                             f"{copy_length}, got {seq_len}")
        if num_symbols < 2:
            raise ValueError(f"data.num_symbols must be >= 2, got {num_symbols}")
        super().__init__(name=name, seq_len=seq_len, **kwargs)
        self.num_symbols, self.copy_length = num_symbols, copy_length
        self._check_memory()

    def _make(self, n, generator):
        return make_selective_copy(n, self.seq_len, generator, self.num_symbols, self.copy_length)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            task_kind="step_classification", vocab_size=self.num_symbols + 2,
            output_size=self.num_symbols + 1,
            baselines={"loss": math.log(self.num_symbols), "acc": 1.0 / self.num_symbols},
        )


class AddingDataModule(_SyntheticDataModule):
    min_seq_len = 2  # one marker in each half
    task = "adding"

    def __init__(self, name: str = "adding", seq_len: int = 50, **kwargs):
        super().__init__(name=name, seq_len=seq_len, **kwargs)
        self._check_memory()

    def _make(self, n, generator):
        return make_adding(n, self.seq_len, generator)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(task_kind="last_regression", input_size=2, output_size=1,
                        baselines={"loss": 1.0 / 6.0, "mse": 1.0 / 6.0})


class ParityDataModule(_SyntheticDataModule):
    task = "parity"

    def __init__(self, name: str = "parity", seq_len: int = 32, **kwargs):
        super().__init__(name=name, seq_len=seq_len, **kwargs)
        self._check_memory()

    def _make(self, n, generator):
        return make_parity(n, self.seq_len, generator)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(task_kind="step_classification", vocab_size=2, output_size=2,
                        baselines={"loss": math.log(2), "acc": 0.5})
