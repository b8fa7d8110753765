"""One-step / multi-step forecasting of a univariate series (``data=timeseries``).

Real series (``data.series``), shipped in statsmodels' wheel (``statsmodels.datasets``):

==========  =================================================================  ======  ======
name        what                                                               length  period
==========  =================================================================  ======  ======
co2         Mauna Loa atmospheric CO2 (ppm), weekly, Mar 1958 - Dec 2001;      2284    52
            59 weeks are missing and are interpolated (see below)
sunspots    yearly mean sunspot number, 1700 - 2008                            309     11
nile        yearly flow of the Nile at Aswan (10^8 m^3), 1871 - 1970           100     none
elnino      monthly sea-surface temperature, Nino 1+2 region, 1950 - 2010      732     12
elec_equip  monthly turnover index of electrical-equipment manufacturing, euro  257     12
            area (Eurostat, not seasonally adjusted), Jan 1995 - May 2016
==========  =================================================================  ======  ======

Generated series, named as such: ``generated:mackey_glass`` (the Mackey-Glass delay equation,
tau = 17, sampled every time unit) and ``generated:noisy_sines`` (two sines of period 50 and 25
plus Gaussian noise). For a user's own data: ``csv:<path>`` (the last numeric column of a CSV
file) and ``rdataset:<package>/<item>`` (statsmodels' ``get_rdataset``, which needs the network).

Windows: the input is ``input_length`` consecutive values, the target the next ``horizon`` values.
The series is cut chronologically into train | val | test (``val_fraction``, ``test_fraction``);
a window belongs to the split that holds *all* its target steps, so no target is ever seen by two
splits. Inputs may look back into an earlier split (those values are in the past at forecast
time), never forward. Missing values are filled by linear interpolation *within* each split (edge
gaps take the nearest value of the same split), so no split borrows values from a later one. The
values are standardised with the mean and standard deviation of the train part only; the loss is
the MSE in those units and the task reports MSE and MAE in the series' own units.

``data.normalization``: ``global`` (the default, above: the network reads standardised *levels*)
or ``window``, as forecasters feed networks (Hewamalage, Bergmeir & Bandara 2021, IJF 37(1),
"Recurrent neural networks for time series forecasting"): every window is taken relative to its
own last input value x_last, inputs (x - x_last) / s_in and targets (y - x_last) / s_out, where
s_in is the root mean square of x - x_last over the training windows' inputs and s_out that of
y - x_last over their targets (the last-value forecast's RMSE on train), both fitted on train
only. A network that outputs 0 then forecasts the last value, and it never has to extrapolate a
level it did not see in training. The error of a forecast does not depend on the window's shift,
so ``target_scale`` = s_out and ``target_shift`` = 0 give the task's MSE and MAE in the series'
own units exactly as in ``global`` mode (the reported *values* are then y - x_last, not y).

Baselines, in original units on the test windows, logged as ``baseline/*``: last value
(``mse_last_value``, ``mae_last_value``) and, for a series with a period m, seasonal naive
(``mse_seasonal_naive``, ``mae_seasonal_naive``: the value m steps before each target step, or
2m, ... when the horizon exceeds m). ``baseline/loss`` is the last-value MSE in the loss's units
(global: standardised; window: divided by s_out squared), the reference of the loss chart;
``baseline/mse`` and ``baseline/mae`` repeat the last-value ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.config.errors import check_choice
from rnnlab.data.base import DataSpec, SequenceDataModule, TensorDictDataset
from rnnlab.data.sources import Cache, SourceUnavailable
from rnnlab.data.splits import (
    check_fractions,
    check_sizes,
    length_stats,
    subsample,
)


@dataclass(frozen=True)
class SeriesInfo:
    kind: str  # real | generated | user
    description: str
    period: int | None
    input_length: int


SERIES = {
    "co2": SeriesInfo("real", "Mauna Loa CO2 (ppm), weekly 1958-2001 (statsmodels)", 52, 104),
    "sunspots": SeriesInfo("real", "yearly sunspot number 1700-2008 (statsmodels)", 11, 33),
    "nile": SeriesInfo("real", "yearly Nile flow at Aswan 1871-1970 (statsmodels)", None, 10),
    "elnino": SeriesInfo("real", "monthly Nino 1+2 sea-surface temperature 1950-2010 "
                                 "(statsmodels)", 12, 36),
    "elec_equip": SeriesInfo("real", "monthly euro-area electrical-equipment turnover index "
                                     "1995-2016 (Eurostat, statsmodels)", 12, 24),
    "generated:mackey_glass": SeriesInfo("generated", "GENERATED Mackey-Glass series, tau=17",
                                         None, 50),
    "generated:noisy_sines": SeriesInfo("generated", "GENERATED sines (periods 50, 25) + noise",
                                        50, 100),
}
PREFIXES = ("csv:", "rdataset:")
NORMALIZATIONS = ("global", "window")
SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------- sources
def load_statsmodels(name: str) -> np.ndarray:
    """A real series from statsmodels' bundled datasets, in time order (NaN where missing)."""
    try:
        import statsmodels.datasets as smd
    except ImportError:
        raise SourceUnavailable("data.series needs statsmodels (its wheel ships the real series):"
                                " pip install statsmodels") from None
    if name == "co2":
        frame = smd.co2.load_pandas().data
        return frame["co2"].to_numpy(dtype=np.float64)
    if name == "sunspots":
        return smd.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    if name == "nile":
        return smd.nile.load_pandas().data["volume"].to_numpy(dtype=np.float64)
    if name == "elnino":
        frame = smd.elnino.load_pandas().data.sort_values("YEAR")
        return frame.drop(columns="YEAR").to_numpy(dtype=np.float64).reshape(-1)  # row-major
    if name == "elec_equip":
        from statsmodels.datasets import elec_equip  # not re-exported by statsmodels.datasets

        return elec_equip.load().data.iloc[:, 0].to_numpy(dtype=np.float64)
    raise KeyError(name)


def mackey_glass(length: int, tau: float = 17.0, beta: float = 0.2, gamma: float = 0.1,
                 n: float = 10.0, dt: float = 0.1, sample_every: float = 1.0,
                 warmup: float = 500.0, x0: float = 1.2) -> np.ndarray:
    """dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t), Euler steps of ``dt``, constant
    history ``x0``, sampled every ``sample_every`` time units after ``warmup``."""
    delay = round(tau / dt)
    stride = round(sample_every / dt)
    steps = round(warmup / dt) + length * stride
    x = np.empty(steps + delay + 1)
    x[: delay + 1] = x0
    for t in range(delay, steps + delay):
        lagged = x[t - delay]
        x[t + 1] = x[t] + dt * (beta * lagged / (1.0 + lagged ** n) - gamma * x[t])
    start = delay + round(warmup / dt)
    return x[start + stride: start + stride * (length + 1): stride][:length].copy()


def noisy_sines(length: int, noise: float, seed: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)
    clean = np.sin(2 * np.pi * t / 50.0) + 0.5 * np.sin(2 * np.pi * t / 25.0 + 1.0)
    return clean + noise * np.random.default_rng(seed).standard_normal(length)


def load_csv(path: str) -> np.ndarray:
    import pandas as pd

    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"data.series=csv:{path}: no such file")
    frame = pd.read_csv(file).select_dtypes("number")
    if frame.shape[1] == 0:
        raise ValueError(f"data.series=csv:{path}: the file has no numeric column")
    return frame.iloc[:, -1].to_numpy(dtype=np.float64)


def load_rdataset(spec: str, cache: Cache) -> np.ndarray:
    """``rdataset:<package>/<item>`` through statsmodels' get_rdataset (network), cached."""
    package, _, item = spec.partition("/")
    if not package or not item:
        raise ValueError(f"data.series=rdataset:{spec} must look like rdataset:<package>/<item>, "
                         "e.g. rdataset:datasets/AirPassengers")

    def build() -> dict[str, np.ndarray]:
        import statsmodels.datasets as smd

        try:
            frame = smd.get_rdataset(item, package).data
        except Exception as error:  # noqa: BLE001 - urllib / HTTP errors of many kinds
            raise SourceUnavailable(
                f"data.series=rdataset:{spec}: could not fetch it ({type(error).__name__}); "
                f"the offline series are {', '.join(SERIES)}") from None
        numeric = frame.select_dtypes("number")
        numeric = numeric.drop(columns=[c for c in numeric if c.lower() in ("time", "year")],
                               errors="ignore")
        if numeric.shape[1] == 0:
            raise ValueError(f"data.series=rdataset:{spec} has no numeric value column")
        return {"values": numeric.iloc[:, -1].to_numpy(dtype=np.float64)}

    safe = spec.replace("/", "__")
    return cache.ensure_npz(f"rdataset-{safe}.npz", build, params={"spec": spec})["values"]


# --------------------------------------------------------------------------- windows
def split_bounds(n: int, val_fraction: float, test_fraction: float) -> dict[str, tuple[int, int]]:
    """Chronological [start, end) of each split."""
    train_end = round(n * (1.0 - val_fraction - test_fraction))
    val_end = round(n * (1.0 - test_fraction))
    return {"train": (0, train_end), "val": (train_end, val_end), "test": (val_end, n)}


def interpolate_within(values: np.ndarray, bounds: dict[str, tuple[int, int]]) -> np.ndarray:
    """Fill NaNs linearly inside each split separately (edges: nearest value of that split)."""
    out = values.astype(np.float64).copy()
    for split, (start, end) in bounds.items():
        part = out[start:end]
        missing = np.isnan(part)
        if missing.all():
            raise ValueError(f"the {split} part of the series has no observed value")
        if missing.any():
            index = np.arange(len(part))
            part[missing] = np.interp(index[missing], index[~missing], part[~missing])
    return out


def window_starts(bounds: dict[str, tuple[int, int]], input_length: int,
                  horizon: int) -> dict[str, np.ndarray]:
    """For each split, the indices t of the first target step of its windows: the inputs are
    [t - input_length, t), the targets [t, t + horizon), all targets inside the split."""
    starts = {}
    for split, (start, end) in bounds.items():
        first = max(start, input_length)
        starts[split] = np.arange(first, end - horizon + 1, dtype=np.int64)
    return starts


def raw_windows(values: np.ndarray, starts: np.ndarray, input_length: int,
                horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs (n, input_length), targets (n, horizon)) of the windows starting at ``starts``."""
    inputs = np.stack([values[t - input_length:t] for t in starts]) if len(starts) else \
        np.zeros((0, input_length))
    targets = np.stack([values[t:t + horizon] for t in starts]) if len(starts) else \
        np.zeros((0, horizon))
    return inputs, targets


def window_scales(values: np.ndarray, starts: np.ndarray, input_length: int,
                  horizon: int) -> tuple[float, float]:
    """(s_in, s_out) of ``normalization=window``: the root mean square of x - x_last over the
    inputs and of y - x_last over the targets of the given (training) windows; 1 where 0."""
    inputs, targets = raw_windows(values, starts, input_length, horizon)
    last = inputs[:, -1:]
    s_in = float(np.sqrt(np.mean((inputs - last) ** 2))) if input_length > 1 else 0.0
    s_out = float(np.sqrt(np.mean((targets - last) ** 2)))
    return s_in or 1.0, s_out or 1.0


def make_windows(z: np.ndarray, starts: np.ndarray, input_length: int,
                 horizon: int, window_scale: tuple[float, float] | None = None
                 ) -> dict[str, torch.Tensor]:
    """Tensors of the windows: of ``z`` as they are (``window_scale`` None), or each relative to
    its last input value, inputs divided by s_in and targets by s_out (``window_scale``)."""
    inputs, targets = raw_windows(z, starts, input_length, horizon)
    if window_scale is not None:
        last = inputs[:, -1:]
        inputs, targets = (inputs - last) / window_scale[0], (targets - last) / window_scale[1]
    return {"x": torch.as_tensor(inputs, dtype=torch.float32).unsqueeze(-1),
            "y": torch.as_tensor(targets, dtype=torch.float32)}


def naive_forecasts(values: np.ndarray, starts: np.ndarray, horizon: int,
                    period: int | None) -> dict[str, np.ndarray]:
    """Forecasts (len(starts), horizon) of the last-value and seasonal-naive predictors."""
    steps = np.arange(horizon)
    out = {"last_value": np.repeat(values[starts - 1][:, None], horizon, axis=1)}
    if period:
        back = period * np.ceil((steps + 1) / period).astype(np.int64)  # m, or 2m past a season
        index = starts[:, None] + steps[None, :] - back[None, :]
        if (index >= 0).all():
            out["seasonal_naive"] = values[index]
    return out


# ------------------------------------------------------------------------ datamodule
class TimeSeriesDataModule(SequenceDataModule):
    """Sliding-window forecasting (``last_regression``: MSE loss; MSE, MAE in original units)."""

    def __init__(self, name: str = "timeseries", series: str = "co2", data_dir: str | None = None,
                 input_length: int | None = None, horizon: int = 1, period: int | None = None,
                 normalization: str = "global",
                 val_fraction: float = 0.15, test_fraction: float = 0.15, length: int = 3000,
                 noise: float = 0.1, generated_seed: int = 0, split_seed: int = 0,
                 train_size: int | None = None, val_size: int | None = None,
                 test_size: int | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        if not series.startswith(PREFIXES):
            check_choice("data.series", series,
                         [*SERIES, "csv:<path>", "rdataset:<package>/<item>"])
        check_choice("data.normalization", normalization, NORMALIZATIONS)
        check_fractions("data", val_fraction, test_fraction)
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        check_sizes("data", self.sizes)
        info = SERIES.get(series)
        input_length = input_length if input_length is not None else (
            info.input_length if info else 24)
        if input_length < 1:
            raise ValueError(f"data.input_length must be >= 1, got {input_length}")
        if horizon < 1:
            raise ValueError(f"data.horizon must be >= 1, got {horizon}")
        if period is not None and period < 1:
            raise ValueError(f"data.period must be >= 1 or null, got {period}")
        if length < 10:
            raise ValueError(f"data.length (of a generated series) must be >= 10, got {length}")
        self.series, self.info = series, info
        self.kind = info.kind if info else "user"
        self.input_length, self.horizon = input_length, horizon
        self.normalization = normalization
        #: (s_in, s_out) of normalization=window, fitted on the training windows; else None
        self.window_scale: tuple[float, float] | None = None
        self.period = period if period is not None else (info.period if info else None)
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.length, self.noise, self.generated_seed = length, noise, generated_seed
        self.split_seed = split_seed
        self.cache = Cache(data_dir, "timeseries")
        self.values: np.ndarray | None = None  # original units, interpolated
        self.raw: np.ndarray | None = None  # original units, NaN where missing
        self.mean = self.std = None
        self.starts: dict[str, np.ndarray] = {}
        self._baselines: dict[str, float] = {}

    # ---------------------------------------------------------------------------- data
    def load_raw(self) -> np.ndarray:
        """The series in original units and time order, NaN where a value is missing."""
        series = self.series
        if series.startswith("csv:"):
            return load_csv(series[4:])
        if series.startswith("rdataset:"):
            return load_rdataset(series[len("rdataset:"):], self.cache)
        if series == "generated:mackey_glass":
            params = {"length": self.length, "version": 1}
            def build():
                return {"values": mackey_glass(self.length)}
        elif series == "generated:noisy_sines":
            params = {"length": self.length, "noise": self.noise, "seed": self.generated_seed,
                      "version": 1}
            def build():
                return {"values": noisy_sines(self.length, self.noise, self.generated_seed)}
        else:
            params = {"version": 1}
            def build():
                return {"values": load_statsmodels(series)}
        file = series.replace("generated:", "generated-") + ".npz"
        return self.cache.ensure_npz(file, build, params=params, what=SERIES[series].description
                                     )["values"]

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.load_raw()
        n = len(raw)
        bounds = split_bounds(n, self.val_fraction, self.test_fraction)
        values = interpolate_within(raw, bounds)
        train_start, train_end = bounds["train"]
        self.mean = float(values[train_start:train_end].mean())
        self.std = float(values[train_start:train_end].std()) or 1.0
        z = (values - self.mean) / self.std
        starts = window_starts(bounds, self.input_length, self.horizon)
        for split, found in starts.items():
            if not len(found):
                raise ValueError(
                    f"data.input_length={self.input_length} and data.horizon={self.horizon} "
                    f"leave no {split} window in the {n}-step series {self.series!r}")
        if self.normalization == "window":  # on every training window, before subsampling
            self.window_scale = window_scales(values, starts["train"], self.input_length,
                                              self.horizon)
        starts = {split: found[subsample(len(found), self.sizes[split], self.split_seed, split)]
                  for split, found in starts.items()}
        self.raw, self.values, self.bounds, self.starts = raw, values, bounds, starts
        windows = ({split: make_windows(values, starts[split], self.input_length, self.horizon,
                                        self.window_scale) for split in SPLITS}
                   if self.window_scale else
                   {split: make_windows(z, starts[split], self.input_length, self.horizon)
                    for split in SPLITS})
        self.splits = {split: TensorDictDataset(**windows[split]) for split in SPLITS}
        self._baselines = self.baselines()

    @property
    def loss_scale(self) -> float:
        """The original-units size of one unit of the targets (and the loss's square root)."""
        return self.window_scale[1] if self.window_scale else self.std

    def baselines(self, split: str = "test") -> dict[str, float]:
        """Naive forecasts scored on ``split`` in original units (+ ``loss`` in the loss's)."""
        starts = self.starts[split]
        targets = np.stack([self.values[t:t + self.horizon] for t in starts])
        scores: dict[str, float] = {}
        for name, forecast in naive_forecasts(self.values, starts, self.horizon,
                                              self.period).items():
            error = forecast - targets
            scores[f"mse_{name}"] = float(np.mean(error ** 2))
            scores[f"mae_{name}"] = float(np.mean(np.abs(error)))
        scores["mse"], scores["mae"] = scores["mse_last_value"], scores["mae_last_value"]
        scores["loss"] = scores["mse_last_value"] / self.loss_scale ** 2
        return scores

    @property
    def spec(self) -> DataSpec:
        self.setup()
        return DataSpec(task_kind="last_regression", input_size=1, output_size=self.horizon,
                        baselines=dict(self._baselines), target_scale=self.loss_scale,
                        target_shift=0.0 if self.window_scale else self.mean)

    def summary(self) -> dict:
        self.setup()
        missing = int(np.isnan(self.raw).sum())
        return {
            "series": self.series, "kind": self.kind, "length": len(self.raw),
            "missing_interpolated": missing, "period": self.period,
            "input_length": self.input_length, "horizon": self.horizon,
            "normalization": self.normalization,
            "train_mean": self.mean, "train_std": self.std,
            **({"window_scale_in": self.window_scale[0], "window_scale_out": self.window_scale[1]}
               if self.window_scale else {}),
            "splits": {split: {"size": len(self.splits[split]),
                               "steps": list(self.bounds[split]),
                               "length": length_stats(
                                   [self.input_length] * len(self.starts[split]))}
                       for split in SPLITS},
            "baselines": dict(self._baselines)}
