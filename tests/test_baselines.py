"""The reviewer's baselines (rnnlab.results.baselines) on small made-up data, checked by hand,
and the per-window normalisation the forecast cells are compared with them under."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from rnnlab.data.timeseries import TimeSeriesDataModule
from rnnlab.results import baselines as bl
from rnnlab.results.baselines import (
    _Arima,
    _fixed_forecasts,
    _pick_c,
    baselines_for,
    forecast_baselines,
    frame_accuracy,
    frame_nll,
    music_baselines,
    nb_ratios,
    pixel_baselines,
    repeat_eps,
    text_baselines,
)


def _csv_series(tmp_path, values, name="series.csv"):
    path = tmp_path / name
    path.write_text("t,value\n" + "\n".join(f"{i},{float(v)!r}" for i, v in enumerate(values)))
    return f"csv:{path}"


def _by_kind(rows):
    """Rows keyed by the first word of their name (last, seasonal, ARIMA..., ETS...)."""
    out = {}
    for row in rows:
        kind = row["baseline"].split("(")[0].split()[0]
        out[kind] = row
    return out


# --------------------------------------------------------------------------- forecasting
def test_seasonal_naive_is_exact_on_a_periodic_series(tmp_path):
    pattern = np.array([3.0, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0])
    series = _csv_series(tmp_path, np.tile(pattern, 30))
    dm = TimeSeriesDataModule(series=series, period=7, input_length=14,
                              data_dir=str(tmp_path / "data"))
    rows = forecast_baselines(dm, arima=False, ets=False)
    seasonal = next(r for r in rows if r["baseline"] == "seasonal naive (m = 7)")
    assert seasonal["test/mse"] == 0.0 and seasonal["test/mae"] == 0.0
    assert _by_kind(rows)["last"]["test/mse"] > 1.0


def test_the_candidate_forms():
    names = [c.name for c in bl.arima_candidates(12)]
    assert len(names) == 27 and len(set(names)) == 27
    assert {"ARIMA(0,1,0)", "ARIMA(2,1,2) with drift", "ARIMA(1,1,0)(0,1,1)_12"} <= set(names)
    assert len(bl.arima_candidates(52)) == len(bl.arima_candidates(None)) == 18  # m > 24
    assert [c.name for c in bl.ets_candidates(None)] == ["ETS(A,N,N)", "ETS(A,A,N)",
                                                         "ETS(A,Ad,N)"]
    assert len(bl.ets_candidates(7)) == 6 and "ETS(A,Ad,A) m = 7" in [
        c.name for c in bl.ets_candidates(7)]


def test_arima_and_ets_beat_the_naive_forecasts_on_a_trend(tmp_path, monkeypatch):
    # a random walk with drift 2 and AR(1) steps: y_t = y_t-1 + 2 + v_t, v_t = v_t-1 / 2 + e_t
    e = np.random.default_rng(0).normal(0.0, 1.0, 160)
    steps = np.zeros(160)
    for i in range(1, 160):
        steps[i] = 0.5 * steps[i - 1] + e[i]
    values = np.cumsum(2.0 + steps)
    dm = TimeSeriesDataModule(series=_csv_series(tmp_path, values), input_length=10,
                              data_dir=str(tmp_path / "data"))
    # two ARIMA candidates (the full 18 take seconds): validation must pick the drift
    monkeypatch.setattr(bl, "arima_candidates", lambda period: [
        _Arima((0, 1, 1)), _Arima((0, 1, 1), drift=True)])
    rows = _by_kind(forecast_baselines(dm))
    arima = next(v for k, v in rows.items() if k.startswith("ARIMA"))
    ets = next(v for k, v in rows.items() if k.startswith("ETS"))
    # last value misses by the drift plus the step: mse ~ 4 + 4/3; the right model by e: ~ 1
    assert rows["last"]["test/mse"] > 4.0
    assert arima["test/mse"] < 0.6 * rows["last"]["test/mse"]
    assert ets["test/mse"] < 0.6 * rows["last"]["test/mse"]
    # each row names its pick, the space it was picked from, and that val picked it
    assert arima["baseline"].startswith("ARIMA(0,1,1) with drift (by val MSE among 2")
    assert "by val MSE among 3" in ets["baseline"] and "refit on train + val" in ets["baseline"]


@pytest.mark.parametrize("horizon", [1, 3])
def test_forecasts_use_only_the_past_and_fitted_parameters(tmp_path, horizon):
    dm = TimeSeriesDataModule(series="generated:noisy_sines", length=400, horizon=horizon,
                              input_length=30, period=50, data_dir=str(tmp_path))
    dm.setup()
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    values, starts = dm.values, dm.starts["test"][::7]
    with warnings.catch_warnings(), threadpool_limits(1):  # as forecast_baselines runs them
        warnings.simplefilter("ignore")
        fitted = SARIMAX(values[:dm.bounds["test"][0]], order=(1, 1, 1)).fit(disp=False)
        by_hand = np.stack([fitted.apply(values[:t]).forecast(horizon) for t in starts])
        ours = _fixed_forecasts(fitted, values, starts, dm.bounds["test"][1], horizon)
        np.testing.assert_allclose(ours, by_hand, rtol=1e-8)
        # ETS the same way: the fixed model on the values before each window only
        ets = bl._Ets("add", False, None)
        fit = ets.fit(values[:dm.bounds["test"][0]])
        by_hand = np.stack([np.asarray(ets.model(values[:t]).smooth(fit.params)
                                       .forecast(horizon)) for t in starts])
        ours = ets.forecasts(fit, values, starts, dm.bounds["test"][1], horizon)
        np.testing.assert_allclose(ours, by_hand, rtol=1e-8)


def test_the_form_is_picked_on_validation_only(tmp_path, monkeypatch):
    """What the test part holds cannot change which ARIMA / ETS form is picked."""
    t = np.arange(200, dtype=float)
    values = np.sin(2 * np.pi * t / 4) + 0.05 * t + np.random.default_rng(1).normal(0, .2, 200)
    wild = values.copy()
    wild[170:] = np.random.default_rng(2).normal(0.0, 50.0, 30)  # the last 15% = the test part
    monkeypatch.setattr(bl, "arima_candidates", lambda period: [
        _Arima((0, 1, 1)), _Arima((1, 1, 0), drift=True), _Arima((0, 1, 1), period)])
    monkeypatch.setattr(bl, "ets_candidates", lambda period: [
        bl._Ets(None, False, None), bl._Ets("add", False, period)])
    names = []
    for i, series in enumerate((values, wild)):
        dm = TimeSeriesDataModule(series=_csv_series(tmp_path, series, f"s{i}.csv"), period=4,
                                  input_length=8, data_dir=str(tmp_path / "data"))
        rows = forecast_baselines(dm)
        names.append([r["baseline"] for r in rows[2:]])
    assert names[0] == names[1]
    assert "among 3" in names[0][0] and "among 2" in names[0][1]


# ----------------------------------------------------------------------- window inputs
def test_window_normalisation_is_relative_to_each_windows_last_value(tmp_path):
    dm = TimeSeriesDataModule(series="sunspots", normalization="window", horizon=2,
                              data_dir=str(tmp_path))
    dm.setup()
    values, L = dm.values, dm.input_length
    train = dm.starts["train"]
    last = values[train - 1]
    s_in = np.sqrt(np.mean([(values[t - L:t] - values[t - 1]) ** 2 for t in train]))
    s_out = np.sqrt(np.mean([(values[t:t + 2] - values[t - 1]) ** 2 for t in train]))
    assert dm.window_scale == pytest.approx((s_in, s_out))
    assert s_out == pytest.approx(np.sqrt(np.mean((np.stack(
        [values[t:t + 2] for t in train]) - last[:, None]) ** 2)))  # last value's train RMSE
    t = int(dm.starts["test"][3])
    item = dm.splits["test"][3]
    np.testing.assert_allclose(item["x"][:, 0].numpy(), (values[t - L:t] - values[t - 1]) / s_in,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item["y"].numpy(), (values[t:t + 2] - values[t - 1]) / s_out,
                               rtol=1e-5, atol=1e-6)
    spec = dm.spec
    assert spec.target_scale == pytest.approx(s_out) and spec.target_shift == 0.0
    # The task's metric in original units: a network that outputs 0 scores the last value's mse.
    y = dm.splits["test"].tensors["y"].double()
    zero_output_mse = float(torch.mean((0 * y - y) ** 2) * s_out ** 2)
    assert zero_output_mse == pytest.approx(spec.baselines["mse_last_value"], rel=1e-5)
    assert spec.baselines["loss"] == pytest.approx(spec.baselines["mse_last_value"] / s_out ** 2)


def test_window_scales_are_fitted_on_train_only(tmp_path, monkeypatch):
    dm = TimeSeriesDataModule(series="elnino", normalization="window", data_dir=str(tmp_path))
    dm.setup()
    end = dm.bounds["train"][1]
    original = TimeSeriesDataModule.load_raw

    def shifted(self):
        raw = original(self).copy()
        raw[end:] *= 10.0
        return raw

    monkeypatch.setattr(TimeSeriesDataModule, "load_raw", shifted)
    other = TimeSeriesDataModule(series="elnino", normalization="window", data_dir=str(tmp_path))
    other.setup()
    assert other.window_scale == pytest.approx(dm.window_scale)


def test_global_normalisation_is_unchanged_and_bad_values_fail(tmp_path):
    dm = TimeSeriesDataModule(series="nile", data_dir=str(tmp_path))
    dm.setup()
    assert dm.normalization == "global" and dm.window_scale is None
    assert dm.spec.target_shift == pytest.approx(dm.mean)
    with pytest.raises(ValueError, match="data.normalization"):
        TimeSeriesDataModule(series="nile", normalization="levels", data_dir=str(tmp_path))


def test_elec_equip_is_a_shipped_monthly_series(tmp_path):
    dm = TimeSeriesDataModule(series="elec_equip", data_dir=str(tmp_path))
    dm.setup()
    assert len(dm.raw) == 257 and dm.period == 12 and dm.input_length == 24
    assert dm.raw[0] == pytest.approx(66.19)  # January 1995
    assert dm.kind == "real"


# ------------------------------------------------------------------------ classification
def test_c_is_picked_by_the_validation_score_smallest_among_equals():
    val_scores = {0.1: 0.7, 1.0: 0.8, 10.0: 0.8, 100.0: 0.6}
    c, model, score = _pick_c(lambda c: ("model", c), lambda m: val_scores[m[1]],
                              sorted(val_scores))
    assert (c, model, score) == (1.0, ("model", 1.0), 0.8)


def test_nb_ratios_by_hand():
    from scipy import sparse

    counts = sparse.csr_matrix(np.array([[2, 0, 1], [1, 0, 0], [0, 3, 1]]))
    labels = np.array([1, 1, 0])
    # binary counts: positive [2, 0, 1] + 1 = [3, 1, 2] (sum 6); negative [0, 1, 1] + 1 =
    # [1, 2, 2] (sum 5)
    expected = np.log(np.array([3, 1, 2]) / 6) - np.log(np.array([1, 2, 2]) / 5)
    np.testing.assert_allclose(nb_ratios(counts, labels), expected)


def _toy_text():
    texts = {"train": ["good fine", "bad awful", "good", "bad", "fine good nice", "awful bad"],
             "val": ["nice good", "awful bad"],
             "test": ["good nice", "awful", "bad bad", "fine"]}
    labels = {"train": [1, 0, 1, 0, 1, 0], "val": [1, 0], "test": [1, 0, 0, 1]}
    tables = {s: {"tokens": [t.split() for t in texts[s]], "label": labels[s]} for s in texts}
    return SimpleNamespace(tables=tables, num_classes=2, setup=lambda: None,
                           spec=SimpleNamespace(baselines={"acc": 0.5, "f1": 0.0}))


def test_tuned_bag_of_words_on_a_separable_toy_set():
    rows = text_baselines(_toy_text(), grid=(0.1, 1.0, 10.0))
    assert rows[0] == {"baseline": "majority class", "test/acc": 0.5, "test/f1": 0.0}
    assert [r["baseline"].split(" (")[0] for r in rows[1:]] == ["bag-of-words LR", "NB-LR"]
    for row in rows[1:]:
        assert row["test/acc"] == 1.0 and row["test/f1"] == 1.0
        # val scores 1.0 at every C: the smallest C is picked, and the row says so
        assert "C = 0.1 (by val acc 1.000 over C = 0.1 .. 10 (3 values))" in row["baseline"]


def _toy_digits(per_class=6, seed=0):
    """10 classes, each one lit 8 x 8 block of a 28 x 28 image, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(10):
        for _ in range(per_class):
            image = rng.integers(0, 40, (28, 28))
            r, c = divmod(label, 3)
            image[r * 7:r * 7 + 8, c * 9:c * 9 + 8] = 255
            images.append(image.reshape(-1))
            labels.append(label)
    return torch.tensor(np.array(images), dtype=torch.uint8), torch.tensor(labels)


def test_pixel_logistic_regression_on_made_up_digits():
    splits = {}
    for seed, split in enumerate(("train", "val", "test")):
        x, y = _toy_digits(seed=seed)
        splits[split] = _Sized({"x": x, "y": y})
    dm = SimpleNamespace(setup=lambda: None, splits=splits,
                         spec=SimpleNamespace(output_size=10,
                                              baselines={"acc": 0.1, "f1": 0.018}))
    rows = pixel_baselines(dm, grid=(0.01, 1.0))
    assert rows[0]["baseline"] == "majority class" and rows[0]["test/acc"] == 0.1
    assert rows[1]["test/acc"] == 1.0 and rows[1]["test/f1"] == 1.0
    assert "C = 0.01 (by val acc 1.000" in rows[1]["baseline"]


class _Sized:
    def __init__(self, tensors):
        self.tensors = tensors

    def __len__(self):
        return len(self.tensors["y"])


# ---------------------------------------------------------------------------------- music
def test_repeat_the_previous_frame_on_a_three_frame_roll_by_hand():
    roll = np.zeros((3, 88))
    roll[0, [40, 44, 47]] = 1  # C major
    roll[1, [40, 45, 48]] = 1  # one key kept
    roll[2, [40, 45, 48, 52]] = 1  # three kept, one added
    previous, targets = roll[:-1], roll[1:]
    # frame 1 from frame 0: TP 1, FP 2, FN 2; frame 2 from frame 1: TP 3, FP 0, FN 1
    assert frame_accuracy(previous, targets) == pytest.approx(4 / (4 + 2 + 3))
    # keys that change: 4 in the first step, 1 in the second, of 2 x 88
    eps = repeat_eps(previous, targets)
    assert eps == pytest.approx(5 / 176)
    probs = np.where(previous > 0, 1 - eps, eps)
    # per frame: 4 keys changed and 84 did not, then 1 and 87; summed over keys, mean of frames
    by_hand = -(5 * np.log(eps) + 171 * np.log(1 - eps)) / 2
    assert frame_nll(probs, targets) == pytest.approx(by_hand)


def test_music_baselines_tune_eps_on_val_and_score_test():
    roll = np.zeros((3, 88), dtype=np.uint8)
    roll[0, [40, 44, 47]] = 1
    roll[1, [40, 45, 48]] = 1
    roll[2, [40, 45, 48, 52]] = 1
    still = np.zeros((4, 88), dtype=np.uint8)
    still[:, [30, 50]] = 1  # nothing changes

    def split(*rolls):
        return SimpleNamespace(rolls=[torch.from_numpy(r) for r in rolls])

    dm = SimpleNamespace(setup=lambda: None,
                         splits={"train": split(still), "val": split(roll), "test": split(roll)})
    rows = music_baselines(dm)
    assert [list(r) for r in rows] == [["baseline", "test/acc", "test/nll"]] * 2
    repeat = rows[1]
    assert repeat["test/acc"] == pytest.approx(4 / 9)
    assert f"eps = {5 / 176:.4f}, the val maximum likelihood" in repeat["baseline"]
    eps = 5 / 176
    assert repeat["test/nll"] == pytest.approx(-(5 * np.log(eps) + 171 * np.log(1 - eps)) / 2)
    # independent keys: train has keys 30 and 50 always on (clipped to 1 - 1e-4), never else
    assert rows[0]["test/acc"] == 0.0  # predicts 30 and 50, which test never holds


# ---------------------------------------------------------------------------------- entry
@pytest.mark.parametrize("name,cls", [("music", "MusicDataModule"),
                                      ("seqmnist", "SeqMNISTDataModule"),
                                      ("sentiment", "SentimentDataModule"),
                                      ("timeseries", "TimeSeriesDataModule")])
def test_baselines_for_dispatches_each_real_data_config(name, cls, tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from rnnlab.data.schemas import SCHEMAS

    config = OmegaConf.to_container(OmegaConf.structured(SCHEMAS[name]))
    config["data_dir"] = str(tmp_path)
    seen = []
    monkeypatch.setitem(bl.BASELINES, name, lambda dm: seen.append(dm) or [{"baseline": "x"}])
    assert baselines_for(config) == [{"baseline": "x"}]
    assert type(seen[0]).__name__ == cls


def test_baselines_for_a_forecast_config_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(bl, "arima_candidates", lambda period: [_Arima((0, 1, 0))])
    monkeypatch.setattr(bl, "ets_candidates", lambda period: [bl._Ets(None, False, None)])
    pattern = np.array([1.0, 2.0, 0.0, 5.0])
    config = {"_target_": "rnnlab.data.timeseries.TimeSeriesDataModule", "name": "timeseries",
              "series": _csv_series(tmp_path, np.tile(pattern, 40)), "period": 4,
              "input_length": 8, "normalization": "window", "data_dir": str(tmp_path / "d")}
    rows = baselines_for(config)
    assert [list(r) for r in rows] == [["baseline", "test/mse", "test/mae"]] * len(rows)
    assert rows[1] == {"baseline": "seasonal naive (m = 4)", "test/mse": 0.0, "test/mae": 0.0}
    assert len(rows) == 4


def test_synthetic_tasks_have_no_extra_baselines():
    assert baselines_for({"name": "copy"}) is None


def test_baselines_for_refuses_a_recorded_data_config_naming_other_code(tmp_path):
    """A run's record is untrusted: a data config whose _target_ is not rnnlab's is refused in
    one line before anything is instantiated (no file is created)."""
    from rnnlab.config.untrusted import UntrustedContent

    pwned = tmp_path / "PWNED"
    config = {"_target_": "builtins.open", "name": "timeseries", "file": str(pwned), "mode": "w"}
    with pytest.raises(UntrustedContent, match="builtins.open"):
        baselines_for(config, source="run/results.json")
    assert not pwned.exists()
