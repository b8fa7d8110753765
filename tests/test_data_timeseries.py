"""data=timeseries: statsmodels' real series, chronological windows, train-only scaling."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.data.timeseries import (
    SERIES,
    TimeSeriesDataModule,
    interpolate_within,
    mackey_glass,
    naive_forecasts,
    split_bounds,
    window_starts,
)

pytest.importorskip("statsmodels")

REAL = {"co2": (2284, 59), "sunspots": (309, 0), "nile": (100, 0), "elnino": (732, 0)}


@pytest.fixture(scope="session")
def co2(data_dir):
    module = TimeSeriesDataModule(series="co2", data_dir=str(data_dir))
    module.setup()
    return module


@pytest.mark.parametrize("series", sorted(REAL))
def test_real_series_load(series, data_dir):
    module = TimeSeriesDataModule(series=series, data_dir=str(data_dir))
    module.setup()
    length, missing = REAL[series]
    assert len(module.raw) == length
    assert int(np.isnan(module.raw).sum()) == missing
    assert not np.isnan(module.values).any()
    assert module.kind == "real"
    assert all(len(module.splits[s]) > 0 for s in ("train", "val", "test"))


def test_co2_is_the_mauna_loa_record(co2):
    assert co2.raw[0] == pytest.approx(316.1)  # 1958-03-29
    assert 310 < np.nanmin(co2.raw) and np.nanmax(co2.raw) < 380
    assert co2.period == 52 and co2.input_length == 104


def test_windows_are_chronological_and_targets_never_shared(co2):
    seen = {}
    horizon = co2.horizon
    for split in ("train", "val", "test"):
        start, end = co2.bounds[split]
        starts = co2.starts[split]
        assert (starts >= start).all() and (starts + horizon <= end).all()
        assert (starts - co2.input_length >= 0).all()
        seen[split] = {int(t) + h for t in starts for h in range(horizon)}
    assert not seen["train"] & seen["val"] and not seen["val"] & seen["test"]
    assert max(seen["train"]) < min(seen["val"]) <= max(seen["val"]) < min(seen["test"])


def test_window_contents_match_the_series(co2):
    z = (co2.values - co2.mean) / co2.std
    item = co2.splits["test"][5]
    t = int(co2.starts["test"][5])
    assert item["x"].shape == (co2.input_length, 1)
    np.testing.assert_allclose(item["x"][:, 0].numpy(), z[t - co2.input_length:t], rtol=1e-5)
    np.testing.assert_allclose(item["y"].numpy(), z[t:t + 1], rtol=1e-5)


def test_scaling_is_fitted_on_train_only(co2, data_dir, monkeypatch):
    start, end = co2.bounds["train"]
    assert co2.mean == pytest.approx(co2.values[start:end].mean())
    assert co2.std == pytest.approx(co2.values[start:end].std())
    # Change everything after train: the scaling must not move.
    original = TimeSeriesDataModule.load_raw

    def shifted(self):
        raw = original(self).copy()
        raw[end:] += 1000.0
        return raw

    monkeypatch.setattr(TimeSeriesDataModule, "load_raw", shifted)
    other = TimeSeriesDataModule(series="co2", data_dir=str(data_dir))
    other.setup()
    assert other.mean == pytest.approx(co2.mean) and other.std == pytest.approx(co2.std)


def test_spec_reports_original_units_and_baselines(co2):
    spec = co2.spec
    assert spec.task_kind == "last_regression" and spec.input_size == 1
    assert spec.output_size == 1
    assert spec.target_scale == pytest.approx(co2.std)
    assert spec.target_shift == pytest.approx(co2.mean)
    b = spec.baselines
    assert {"loss", "mse_last_value", "mae_last_value", "mse_seasonal_naive",
            "mae_seasonal_naive"} <= set(b)
    assert b["loss"] == pytest.approx(b["mse_last_value"] / co2.std ** 2)
    # Recompute last value by hand, in ppm.
    starts = co2.starts["test"]
    errors = co2.values[starts] - co2.values[starts - 1]
    assert b["mse_last_value"] == pytest.approx(np.mean(errors ** 2))
    seasonal = co2.values[starts] - co2.values[starts - 52]
    assert b["mae_seasonal_naive"] == pytest.approx(np.mean(np.abs(seasonal)))


def test_interpolation_stays_inside_each_split():
    values = np.array([1.0, np.nan, 3.0, np.nan, 10.0, np.nan, 20.0])
    bounds = {"train": (0, 4), "val": (4, 5), "test": (5, 7)}
    filled = interpolate_within(values, bounds)
    # index 3 is the last train value: it takes train's nearest (3.0), never val's 10.0
    assert filled.tolist() == [1.0, 2.0, 3.0, 3.0, 10.0, 20.0, 20.0]


def test_multistep_horizon_and_seasonal_naive():
    values = np.arange(20, dtype=float)
    starts = np.array([10, 12])
    forecasts = naive_forecasts(values, starts, horizon=3, period=2)
    assert forecasts["last_value"].tolist() == [[9, 9, 9], [11, 11, 11]]
    assert forecasts["seasonal_naive"].tolist() == [[8, 9, 8], [10, 11, 10]]
    bounds = split_bounds(100, 0.15, 0.15)
    assert bounds == {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
    starts = window_starts(bounds, input_length=10, horizon=3)
    assert starts["train"][0] == 10 and starts["train"][-1] == 67 and starts["val"][0] == 70


def test_multistep_batches(data_dir):
    module = TimeSeriesDataModule(series="sunspots", horizon=4, input_length=22,
                                  data_dir=str(data_dir), batch_size=8)
    batch = next(iter(module.train_dataloader()))
    assert batch["x"].shape == (8, 22, 1) and batch["y"].shape == (8, 4)
    assert module.spec.output_size == 4


@pytest.mark.parametrize("series", ["generated:mackey_glass", "generated:noisy_sines"])
def test_generated_series_are_named_as_such(series, data_dir):
    assert SERIES[series].kind == "generated" and "GENERATED" in SERIES[series].description
    module = TimeSeriesDataModule(series=series, data_dir=str(data_dir), length=600)
    module.setup()
    assert module.kind == "generated" and len(module.raw) == 600
    assert module.summary()["kind"] == "generated"


def test_mackey_glass_is_chaotic_but_bounded():
    x = mackey_glass(500)
    assert 0.2 < x.min() and x.max() < 1.5 and x.std() > 0.1


def test_csv_series(tmp_path, data_dir):
    csv = tmp_path / "series.csv"
    csv.write_text("time,value\n" + "\n".join(f"{i},{np.sin(i / 3):.5f}" for i in range(200)))
    module = TimeSeriesDataModule(series=f"csv:{csv}", data_dir=str(data_dir), input_length=12,
                                  period=19)
    module.setup()
    assert module.kind == "user" and len(module.raw) == 200
    assert "mse_seasonal_naive" in module.spec.baselines


def test_subsample_for_quick_runs(data_dir):
    module = TimeSeriesDataModule(series="co2", data_dir=str(data_dir), train_size=64,
                                  val_size=32, test_size=32)
    module.setup()
    assert [len(module.splits[s]) for s in ("train", "val", "test")] == [64, 32, 32]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"series": "co3"}, "data.series='co3' is not one of co2, sunspots"),
    ({"series": "mackey_glass"}, "generated:mackey_glass"),
    ({"horizon": 0}, "data.horizon"),
    ({"val_fraction": 0.6, "test_fraction": 0.5}, "data.val_fraction + data.test_fraction"),
])
def test_bad_settings_are_one_line(kwargs, expected):
    with pytest.raises(ValueError) as info:
        TimeSeriesDataModule(**kwargs)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_window_longer_than_a_split_is_one_line(data_dir):
    module = TimeSeriesDataModule(series="nile", input_length=90, data_dir=str(data_dir))
    with pytest.raises(ValueError, match="data.input_length=90"):
        module.setup()


def test_rdataset_without_network_is_one_line(tmp_path, monkeypatch):
    import statsmodels.datasets as smd

    def offline(item, package):
        raise OSError("[Errno -2] Name or service not known")

    monkeypatch.setattr(smd, "get_rdataset", offline)
    module = TimeSeriesDataModule(series="rdataset:datasets/AirPassengers",
                                  data_dir=str(tmp_path))
    from rnnlab.data.sources import SourceUnavailable

    with pytest.raises(SourceUnavailable) as info:
        module.setup()
    assert "\n" not in str(info.value) and "co2" in str(info.value)


def test_prepare_data_script_describes_the_datasets(data_dir, capsys):
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "prepare_data.py"
    spec = importlib.util.spec_from_file_location("prepare_data", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["timeseries", "--data-dir", str(data_dir)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines at the terminal width
    for series in SERIES:
        assert f"timeseries {series}" in out
    assert "missing_interpolated: 59" in out and "mse_seasonal_naive" in out
