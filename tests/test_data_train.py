"""A fast dev run of model=gru on every real dataset, through the real config tree."""

from __future__ import annotations

import json

import pytest

MUSIC_PIECES = 12  # the first chorales only: parsing the full corpus is test_data_music's job


CASES = {
    "sentiment": ([], {"acc", "f1"}, {"baseline/acc", "baseline/loss"}),
    "timeseries": ([], {"mse", "mae"}, {"baseline/mse_last_value", "baseline/mse_seasonal_naive",
                                        "baseline/mae_last_value", "baseline/loss"}),
    "music": ([f"data.limit_pieces={MUSIC_PIECES}"], {"nll", "acc"},
              {"baseline/nll", "baseline/loss", "baseline/acc"}),
    # pixel by pixel (T=784), permuted: one training batch keeps it quick on a CPU
    "seqmnist": (["data.permute=true", "trainer.limit_train_batches=1"], {"acc", "f1"},
                 {"baseline/acc", "baseline/loss"}),
}


@pytest.mark.parametrize("data", list(CASES))
def test_fast_dev_run(data, data_dir, run_training):
    extra, metrics, baselines = CASES[data]
    overrides = [f"data={data}", "model=gru", "debug=fast", "logger=csv", "model.hidden_size=16",
                 f"data.data_dir={data_dir}", *extra]
    try:
        results, run_dir = run_training(overrides)
    except SystemExit as error:  # a one-line config error: show it
        pytest.fail(f"rnnlab-train {' '.join(overrides)} exited {error.code}")
    assert results["status"] == "completed", results.get("error")
    on_disk = json.loads((run_dir / "results.json").read_text())
    keys = set(on_disk["metrics"])
    assert {"train/loss", "val/loss", "test/loss"} <= keys
    assert {f"test/{name}" for name in metrics} <= keys
    assert baselines <= keys
    assert on_disk["config"]["data"]["data_dir"] == str(data_dir)
    assert on_disk["config"]["data"]["train_size"] == 64  # debug=fast subsampled the split


@pytest.mark.parametrize(("override", "expected"), [
    ("data=sentiment data.source=imdb", "data.source='imdb' is not one of rotten_tomatoes"),
    ("data=timeseries data.series=co3", "data.series='co3' is not one of co2"),
    ("data=seqmnist data.mode=column", "data.mode='column' is not one of pixel, row"),
    ("data=music data.source=midi", "data.source='midi' is not one of music21, jsb_pickle"),
])
def test_bad_data_setting_is_one_line(override, expected, data_dir, run_training, capsys):
    with pytest.raises(SystemExit) as info:
        run_training([*override.split(), "debug=fast", "logger=none", f"data.data_dir={data_dir}"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"rnnlab-train: error: {expected}" or expected in err[-1]
    assert "Traceback" not in "\n".join(err)
