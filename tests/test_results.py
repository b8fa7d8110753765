"""Tables a researcher can trust: row keys, aggregates checked against hand counts, references,
verdicts, formats, figures. Runs here are results.json files written as train.py writes them."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from rnnlab.config.naming import run_name
from rnnlab.config.references import ReferenceError
from rnnlab.results import aggregate, load_runs, parse_references, render, row_keys, verdict
from rnnlab.results.report import write_report

BASE_CONFIG = {
    "seed": 0, "experiment_name": "x", "tags": ["x"], "test": True,
    "monitor": {"metric": "val/loss", "mode": "min"},
    "model": {"cell": "lstm", "impl": "scratch", "hidden_size": 8, "forget_bias": None,
              "variant": None, "reset": "after"},
    "data": {"_target_": "rnnlab.data.synthetic.AddingDataModule", "name": "adding",
             "seq_len": 20, "batch_size": 16},
    "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 0.003,
                  "betas": [0.9, 0.999]},
    "trainer": {"max_epochs": 1, "enable_progress_bar": True},
    "paths": {"output_dir": "OUT", "log_dir": "logs"},
    "callbacks": {"model_checkpoint": {"dirpath": "OUT/checkpoints"}},
}


def _set(tree: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def write_run(root, name, settings=None, seed=0, status="completed", metrics=None,
              overrides=None, reference=None, num_params=100):
    """A run dir as train.py leaves it: results.json (+ .hydra/overrides.yaml)."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    config = json.loads(json.dumps(BASE_CONFIG).replace("OUT", str(run_dir)))
    config["seed"] = seed
    for key, value in (settings or {}).items():
        _set(config, key, value)
    record = {"status": status, "metrics": metrics or {}, "num_params": num_params,
              "hidden_size": 8, "wall_time_s": 1.0, "steps": 10, "seed": seed, "config": config}
    if status != "completed":
        record["error"] = "Diverged: loss is nan" if status == "diverged" else "RuntimeError: x"
    if reference is not None:
        record["reference"] = reference
    (run_dir / "results.json").write_text(json.dumps(record))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides or []))
    return run_dir


def test_a_non_cell_sweep_is_never_pooled_and_matches_a_hand_count(tmp_path):
    # forget_bias 0 and 2, two seeds each, + one diverged and one failed run at forget_bias 2.
    losses = {(0, 1): 0.10, (0, 2): 0.14, (2, 1): 0.01, (2, 2): 0.02}
    for i, ((bias, seed), loss) in enumerate(losses.items()):
        write_run(tmp_path, str(i), {"model.forget_bias": bias}, seed=seed,
                  metrics={"test/loss": loss, "baseline/loss": 1 / 6},
                  overrides=[f"model.forget_bias={bias}", f"seed={seed}"])
    write_run(tmp_path, "4", {"model.forget_bias": 2}, seed=3, status="diverged",
              metrics={"test/loss": math.nan}, overrides=["model.forget_bias=2", "seed=3"])
    write_run(tmp_path, "5", {"model.forget_bias": 2}, seed=4, status="failed",
              overrides=["model.forget_bias=2", "seed=4"])
    runs = load_runs([tmp_path])
    assert len(runs) == 6 and row_keys(runs) == ["model.forget_bias"]
    table = aggregate(runs)
    assert list(table["model.forget_bias"]) == [0, 2]
    assert list(table["n"]) == [2, 2]
    assert list(table["diverged"]) == [0, 1] and list(table["failed"]) == [0, 1]
    assert table["test/loss"].tolist() == pytest.approx([0.12, 0.015])
    assert table["test/loss std"].tolist() == pytest.approx([0.04 / 2**0.5, 0.01 / 2**0.5])
    assert table["seeds"].tolist() == [[1, 2], [1, 2]]
    # 0.12 is 72% of the 1/6 baseline, 0.015 is 9%: solved below 10%.
    assert table["verdict"].tolist() == ["below baseline", "solved"]
    assert table["solved"].tolist() == [0, 1]  # per run: 0.01 (6%) solved, 0.02 (12%) not
    md = render(table, "md")
    header = md.splitlines()[0]
    for column in ("forget_bias", "n", "diverged", "failed", "test/loss (mean±std)"):
        assert column in header


def test_verdict_thresholds():
    assert verdict(0.009, 0.1) == "solved"
    assert verdict(0.0101, 0.1) == "below baseline"
    assert verdict(0.096, 0.1) == "at baseline" and verdict(0.1049, 0.1) == "at baseline"
    assert verdict(0.2, 0.1) == "above baseline"
    assert verdict(math.nan, 0.1) is None and verdict(0.1, None) is None


def test_quickstart_verdicts_on_synthetic_results(tmp_path):
    """The classic finding as the quickstart table states it: per row and per seed."""
    base = 1 / 6
    per_cell = {"rnn": [0.166, 0.168, 0.165], "gru": [0.001, 0.003, 0.002],
                "lstm": [0.004, 0.0009, 0.02]}
    for job, (cell, losses) in enumerate(per_cell.items()):
        for seed, loss in enumerate(losses):
            write_run(tmp_path, f"{3 * job + seed}", {"model.cell": cell}, seed=seed,
                      metrics={"test/loss": loss, "baseline/loss": base},
                      overrides=[f"model={cell}"])
    table = aggregate(load_runs([tmp_path]))
    assert table["model.cell"].tolist() == ["rnn", "gru", "lstm"]  # the order the sweep ran
    assert table["verdict"].tolist() == ["at baseline", "solved", "solved"]
    # lstm seed 2: 0.02 is 12% of the baseline, the mean 5%
    assert table["solved"].tolist() == [0, 3, 3 - 1]
    shown = render(table, "md")
    assert "| rnn " in shown and "0/3" in shown and "3/3" in shown and "2/3" in shown


def test_rows_show_swept_keys_and_drop_group_defaults(tmp_path):
    # data=copy,adding: data._target_ follows from data.name and is not a column; seq_len is.
    for i, (name, target, T) in enumerate([("copy", "Copy", 10), ("adding", "Adding", 50)]):
        write_run(tmp_path, str(i), {"data.name": name, "data._target_": target,
                                     "data.seq_len": T}, overrides=[f"data={name}"],
                  metrics={"test/loss": 0.5})
    keys = row_keys(load_runs([tmp_path]))
    assert keys == ["data.name", "data.seq_len"]


def test_a_swept_key_shows_even_when_another_key_would_determine_it(tmp_path):
    # An incomplete grid: lr is a function of the cell here, but the user swept it.
    write_run(tmp_path, "0", {"model.cell": "rnn", "optimizer.lr": 0.01},
              overrides=["model=rnn", "optimizer.lr=0.01"])
    write_run(tmp_path, "1", {"model.cell": "gru", "optimizer.lr": 0.001},
              overrides=["model=gru", "optimizer.lr=0.001"])
    assert row_keys(load_runs([tmp_path])) == ["model.cell", "optimizer.lr"]


def test_recording_settings_and_paths_do_not_split_rows(tmp_path):
    write_run(tmp_path, "0", {"trainer.enable_progress_bar": True}, seed=0)
    write_run(tmp_path, "1", {"trainer.enable_progress_bar": False}, seed=1)
    runs = load_runs([tmp_path])
    assert row_keys(runs) == []  # paths.output_dir and the checkpoint dir differ, too
    table = aggregate(runs)
    assert len(table) == 1 and table["n"].item() == 2


def test_pivot_by_makes_the_other_keys_columns(tmp_path):
    for cell in ("rnn", "lstm"):
        for T in (10, 20):
            for seed in (0, 1):
                write_run(tmp_path, f"{cell}{T}{seed}", {"model.cell": cell, "data.seq_len": T},
                          seed=seed, metrics={"test/loss": T / 100 + seed / 1000},
                          overrides=[f"model={cell}", f"data.seq_len={T}", f"seed={seed}"])
    table = aggregate(load_runs([tmp_path]))
    text = render(table, "md", by=["model.cell"])
    assert "test/loss @ T=10" in text and "test/loss @ T=20" in text
    assert "0.1005 ± 0.0007071 (n=2)" in text  # the same 4 digits both sides
    with pytest.raises(KeyError, match="model.variant"):
        render(table, "md", by=["model.variant"])


def test_references_reach_the_table_and_only_their_row(tmp_path):
    reference = [
        {"metric": "test/loss", "where": {"model.cell": "lstm", "data.seq_len": 20},
         "value": 0.164, "source": "TCN Table 1"},
        {"metric": "test/loss", "where": {"model.cell": "rnn"}, "claim": "stays at baseline",
         "source": "Le 2015"},
    ]
    for cell in ("rnn", "lstm"):
        write_run(tmp_path, cell, {"model.cell": cell}, metrics={"test/loss": 0.15},
                  overrides=[f"model={cell}"], reference=reference)
    table = aggregate(load_runs([tmp_path]))
    published = dict(zip(table["model.cell"], table["test/loss published"]))
    assert published["lstm"] == 0.164 and math.isnan(published["rnn"])
    text = render(table, "md")
    assert "0.164" in text and "stays at baseline" in text and "TCN Table 1" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()[2:4]}
    assert "[1]" in rows["lstm"] and "[2]" in rows["rnn"] and "[2]" not in rows["lstm"]


def test_a_reference_speaks_only_of_its_own_presets_runs_and_by_tables_mark_it(tmp_path):
    """quickstart's "every row" claim and value stay on quickstart's rows when a table holds
    another preset's runs too; a --by table marks the cells its footnotes speak of."""
    every_row = [{"metric": "test/loss", "claim": "every cell learns adding", "value": 0.01,
                  "source": "quickstart"}]
    for cell in ("rnn", "lstm"):
        write_run(tmp_path, f"q-{cell}", {"model.cell": cell, "experiment_name": "quickstart"},
                  metrics={"test/loss": 0.02}, overrides=[f"model={cell}"], reference=every_row)
        write_run(tmp_path, f"c-{cell}", {"model.cell": cell, "experiment_name": "copy",
                                          "data.name": "copy"},
                  metrics={"test/loss": 0.3}, overrides=[f"model={cell}"])
    table = aggregate(load_runs([tmp_path]))
    assert len(table) == 4
    own = table["experiment_name"] == "quickstart"
    assert (table.loc[own, "test/loss published"] == 0.01).all()
    assert table.loc[~own, "test/loss published"].isna().all()
    lines = render(table, "md").splitlines()
    rows = [line for line in lines if line.startswith("| ") and ("quickstart" in line or
                                                                "copy" in line)]
    assert len(rows) == 4
    assert all(("[1]" in row) == ("quickstart" in row) for row in rows)
    pivoted = render(table, "md", by=["model.cell"])
    assert pivoted.count("[1]") == 3  # the two quickstart cells, and the footnote itself
    assert "\n[1] every row: published test/loss = 0.01" in pivoted


@pytest.mark.parametrize("entries, message", [
    ({"test/loss": 1}, "must be a list"),
    ([{"metric": "test/loss", "value": 1}], "needs 'source'"),
    ([{"metric": "test/loss", "source": "x"}], "'value' (number) or a 'claim'"),
    ([{"metric": "test/loss", "source": "x", "value": "a"}], "value must be a number"),
    ([{"metric": "test/loss", "source": "x", "value": 1, "wher": {}}], "unknown field(s) wher"),
    ([{"metric": "test/loss", "source": "x", "value": 1, "role": "paper"}], "role='paper'"),
])
def test_bad_references_fail_with_one_line(entries, message):
    with pytest.raises(ReferenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_references(entries)


def test_latex_escapes_and_uses_pm(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path, str(seed), seed=seed, metrics={"test/loss": 0.1 + seed / 10},
                  reference=[{"metric": "test/loss", "claim": "50% solved_it", "source": "A & B"}])
    text = render(aggregate(load_runs([tmp_path])), "latex")
    assert "±" not in text and r"$\pm$" in text and r"\_" in text and r"A \& B" in text


def test_latex_right_aligns_numbers_keeps_digits_and_names_booktabs(tmp_path):
    for i, (cell, acc) in enumerate([("rnn", 0.55), ("rnn", 0.574), ("gru", 0.99), ("gru", 1.0)]):
        write_run(tmp_path, str(i), {"model.cell": cell}, seed=i % 2,
                  metrics={"test/loss": 0.1 * (i + 1), "test/acc": acc, "baseline/loss": 1.0},
                  overrides=[f"model={cell}"])
    text = render(aggregate(load_runs([tmp_path])), "latex")
    lines = text.splitlines()
    assert lines[0] == r"% requires \usepackage{booktabs}" and r"\toprule" in text
    header = next(line for line in lines if line.startswith("cell &"))
    columns = [c.strip() for c in header.rstrip("\\ ").split("&")]
    align = dict(zip(columns, lines[1].removeprefix(r"\begin{tabular}{").rstrip("}")))
    assert align["cell"] == "l" and align["verdict (test/loss)"] == "l"
    for column in ("params", "n", r"test/acc (mean $\pm$ std)", r"test/loss 95\% CI (bootstrap)",
                   "p vs best cell (Welch, test/loss)", "solved"):
        assert align[column] == "r", column
    # mean and std with the same significant digits: 0.562 is "0.5620", beside "0.01697"
    assert r"0.5620 $\pm$ 0.01697" in text


def test_run_names_carry_the_swept_keys():
    settings = {"model.cell": "gru", "data.name": "copy", "model.variant": "mgu",
                "model.reset": "before"}
    name = run_name(settings, ["model.cell", "model.variant", "model.reset", "seed"], 0)
    assert name == "gru-copy-variant=mgu-reset=before-s0"


def test_report_writes_tables_and_figures(tmp_path):
    for T in (10, 20):
        for seed in (0, 1):
            run_dir = write_run(tmp_path / "sweep", f"{T}{seed}", {"data.seq_len": T}, seed=seed,
                                metrics={"test/loss": T / 100, "baseline/loss": 0.5},
                                overrides=[f"data.seq_len={T}"])
            (run_dir / "csv").mkdir()
            (run_dir / "csv" / "metrics.csv").write_text(
                "step,train/loss,val/loss\n0,1.0,\n10,0.5,0.6\n20,0.2,0.3\n")
    runs = load_runs([tmp_path / "sweep"])
    report = write_report(runs, aggregate(runs), tmp_path / "out")
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"report.md", "table.md", "table.csv", "table.tex", "test_loss_vs_data_seq_len.png",
            "test_loss_vs_data_seq_len.pdf", "training_curves.png"} <= names
    assert "![test/loss against T" in report.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_aggregate_cli_errors_are_one_line(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "aggregate.py")]
    missing = subprocess.run([*script, str(tmp_path / "nope")], capture_output=True, text=True,
                             check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "no run directory" in missing.stderr
    empty = subprocess.run([*script, str(tmp_path)], capture_output=True, text=True, check=False)
    assert empty.returncode != 0 and "no results.json" in empty.stderr


def test_metric_vs_a_key_with_an_unset_value(tmp_path):
    # forget_bias null (PyTorch's default), 0 and 2: the null row is a level, not a crash.
    from rnnlab.results.figures import metric_vs, numeric_keys

    for i, bias in enumerate([None, 0, 2]):
        write_run(tmp_path, str(i), {"model.forget_bias": bias}, overrides=[
            f"model.forget_bias={'null' if bias is None else bias}"],
            metrics={"test/loss": 0.001 * (i + 1), "baseline/loss": 1 / 6})
    table = aggregate(load_runs([tmp_path]))
    assert numeric_keys(table) == ["model.forget_bias"]
    fig = metric_vs(table, "model.forget_bias", "test/loss")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "forget_bias unset" in labels and "baseline" in labels
    assert ax.get_yscale() == "log"  # 0.001 .. 1/6 with the baseline drawn


def test_fifteen_row_figures_stay_readable_and_a_single_point_is_drawn(tmp_path):
    """3 cells x 5 learning rates over four decades: lr on a log axis, the cell by colour and
    the lr by line style (15 distinct lines), the legend outside the axes; a row whose curve has
    one validation point gets a marker; rows of different baselines keep their own."""
    from rnnlab.results.figures import metric_vs, training_curves

    for cell in ("rnn", "gru", "lstm"):
        for lr in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            run_dir = write_run(tmp_path, f"{cell}-{lr}", {"model.cell": cell, "optimizer.lr": lr},
                                metrics={"test/loss": 0.1 + lr, "baseline/loss": 0.5},
                                overrides=[f"model={cell}", f"optimizer.lr={lr}"])
            (run_dir / "csv").mkdir()
            (run_dir / "csv" / "metrics.csv").write_text("step,val/loss\n10,0.3\n")
    runs = load_runs([tmp_path])
    table = aggregate(runs)
    assert len(table) == 15
    fig = metric_vs(table, "optimizer.lr", "test/loss")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len(ax.containers) == 3  # one errorbar line per cell, x = lr
    curves = training_curves(runs, table, metrics=("val/loss",))
    drawn = [l for l in curves.axes[0].get_lines() if "(n=" in str(l.get_label())]
    assert len(drawn) == 15
    assert len({(l.get_color(), str(l.get_linestyle()), l.get_marker()) for l in drawn}) == 15
    assert len({l.get_color() for l in drawn}) == 3  # one colour per cell
    assert all(l.get_marker() not in (None, "", "None") for l in drawn)  # one point each
    legend = curves.axes[0].get_legend()
    assert legend.get_bbox_to_anchor().x0 > curves.axes[0].get_window_extent().x1


def test_render_by_an_unknown_key_names_the_option_as_its_caller_spells_it(tmp_path):
    for cell in ("rnn", "gru"):
        write_run(tmp_path, cell, {"model.cell": cell}, metrics={"test/loss": 0.1},
                  overrides=[f"model={cell}"])
    table = aggregate(load_runs([tmp_path]))
    with pytest.raises(KeyError, match=r"^\"by=\['model.nope'\]: not a setting"):
        render(table, "md", by=["model.nope"])
    script = [sys.executable, str(REPO / "scripts" / "aggregate.py"), str(tmp_path)]
    done = subprocess.run([*script, "--by", "model.nope"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == ("rnnlab-aggregate: error: --by model.nope: not a setting that "
                                   "differs between these runs (those are: model.cell)")


def test_a_shell_glob_of_a_sweep_dir_is_accepted(tmp_path):
    """`rnnlab-aggregate SWEEP/*` (and -report, -dashboard --runs) also name multirun.yaml and
    summary.csv: the sweep's own files are passed over, the runs read."""
    for cell in ("rnn", "gru"):
        write_run(tmp_path, cell, {"model.cell": cell}, metrics={"test/loss": 0.1},
                  overrides=[f"model={cell}"])
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    (tmp_path / "summary.csv").write_text("a\n1\n")
    assert len(load_runs(sorted(tmp_path.iterdir()))) == 2
    with pytest.raises(FileNotFoundError, match="no run directory or results.json"):
        load_runs([tmp_path / "nope"])


def test_report_by_a_key_writes_the_pivot_and_refuses_an_unknown_one(tmp_path, capsys):
    from rnnlab.commands.report import main as report_main

    for cell in ("rnn", "gru"):
        write_run(tmp_path / "sweep", cell, {"model.cell": cell}, metrics={"test/loss": 0.1},
                  overrides=[f"model={cell}"])
    assert report_main([str(tmp_path / "sweep"), "--by", "model.cell"]) == 0
    assert "test/loss" in (tmp_path / "sweep" / "report" / "table_by.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # bad input: one line, exit 2
        report_main([str(tmp_path / "sweep"), "--by", "model.nope", "--out",
                     str(tmp_path / "other")])
    assert exit_info.value.code == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(
        "rnnlab-report: error: --by model.nope: not a setting"), said
    assert not (tmp_path / "other").exists()
