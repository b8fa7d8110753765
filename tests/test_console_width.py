"""The end-of-sweep table on the console fits the terminal; summary.md keeps every column."""

from __future__ import annotations

import io

import pytest
from test_results import write_run

from rnnlab.results import aggregate, load_runs
from rnnlab.results.tables import display_frame, print_rich, render


def test_the_console_table_fits_100_columns_and_names_what_it_left_out(tmp_path):
    for i, (cell, loss) in enumerate([("rnn", 0.16), ("rnn", 0.17), ("gru", 0.001),
                                      ("gru", 0.002), ("lstm", 0.003), ("lstm", 0.004)]):
        write_run(tmp_path, str(i), {"model.cell": cell}, seed=i % 2,
                  metrics={"test/loss": loss, "test/mae": loss * 2, "test/acc": 0.5,
                           "baseline/loss": 1 / 6}, overrides=[f"model={cell}"])
    table = aggregate(load_runs([tmp_path]))
    shown, _ = display_frame(table)
    assert len(shown.to_markdown(index=False).splitlines()[0]) > 100  # all of it would not fit
    buffer = io.StringIO()
    print_rich(table, "", width=100, file=buffer)
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 100
    header = next(line for line in lines if "cell" in line)
    for column in ("cell", "test/loss (mean±std)", "95% CI", "solved", "verdict"):
        assert column in header, column
    assert any(line.startswith("(") and "more column" in line and "summary.md" in line
               for line in lines)
    # summary.md (render) keeps every column
    assert all(c in render(table, "md") for c in shown.columns)


def test_a_sweep_prints_lines_that_fit_100_columns_one_report_line_per_job(tmp_path):
    """What a plain sweep prints fits COLUMNS=100 (issue 39, item 2): the progress bars, each
    job's report (two lines at most, its run dir in it, relative to the cwd), the sweep's table
    and paths, the one gradient-flow command at the end. Not ours: Hydra's ``#k : overrides``
    line, as long as the overrides typed (its date is left out: hydra/default.yaml)."""
    from conftest import cli

    overrides = ["-m", "model=rnn,gru", "debug=fast", "model.hidden_size=8",
                 "trainer.enable_progress_bar=true", "experiment_name=widthcheck",
                 "hydra.callbacks.sweep_summary.figures=false", "~logger.wandb"]
    result = cli(overrides, cwd=tmp_path, env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    hydra = [line for line in lines if "[HYDRA]" in line]
    assert len(hydra) == 3 and hydra[1].startswith("[") and hydra[1][9:18] == "][HYDRA] "
    # nor a path printed absolute (the plot command's: it runs from anywhere) on a line of its
    # own, longer than the line: pytest's tmp dirs are, a user's logs/ seldom
    wide = [line for line in lines if len(line.expandtabs()) > 100 and line not in hydra
            and not (line.strip().startswith("/") and " " not in line.strip())]
    assert not wide, wide
    assert not [line for line in lines if line.startswith(" " * 10)], lines  # no column wrapped
    # one report per job, its run dir folded in; no per-job plot command (one at the end)
    sweep_dir = next((tmp_path / "logs" / "multiruns" / "widthcheck").iterdir())
    reports = [i for i, line in enumerate(lines) if line.startswith("rnnlab-train: completed")]
    assert len(reports) == 2
    for k, i in enumerate(reports):
        job = "\n".join(lines[i:i + 2])
        assert f"run dir {(sweep_dir / str(k)).relative_to(tmp_path)}" in job, job
    said = "\n".join(lines)
    assert "gradient flow:" not in said.split("[sweep] 2/2")[0]
    end = said.split("gradient flow, every job (one job: its run dir):", 1)[1]
    assert str(sweep_dir) in end.replace("\\\n", " ")
    bars = [line for line in lines if line.startswith("Epoch 0/0")]
    assert len(bars) == 2 and all("train/loss: " in bar for bar in bars), bars
    # the test bar goes when the test ends (its line "testing ... on the test split" stays)
    assert not [line for line in lines if line.startswith("Testing")], lines
    assert said.count("on the test split ...") == 2


@pytest.mark.parametrize("columns", [100, 80])
@pytest.mark.parametrize("multirun", [True, False])
def test_a_report_fits_the_terminal_and_its_command_pastes_whole(tmp_path, monkeypatch, columns,
                                                                 multirun):
    """A run's report at the terminal's width: a job of a multirun in two lines at 100 columns
    with its run dir (relative to the cwd) and no plot command; a single run's plot command
    goes on after a backslash and a shell reads the same words."""
    import shlex

    from rnnlab.run import console

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rnnlab.config.hydra_runtime.in_multirun", lambda: multirun)
    run_dir = tmp_path / "logs" / "multiruns" / "quickstart" / "2026-12-08_01-45-03-914542" / "0"
    (run_dir).mkdir(parents=True)
    (run_dir / "gradflow.npz").write_bytes(b"")
    results = {"status": "completed", "steps": 1024, "wall_time_s": 214.0,
               "metrics": {"test/loss": 0.1698, "test/mae": 0.3365, "baseline/loss": 1 / 6}}
    lines = console.report_line(results, run_dir, columns).splitlines()
    # but the plot command's absolute run dir alone on its line: pytest's tmp dirs are long
    assert all(len(line) <= columns for line in lines
               if not line.strip().startswith(str(tmp_path))), lines
    text = "\n".join(lines)
    relative = "logs/multiruns/quickstart/2026-12-08_01-45-03-914542/0"
    if multirun:
        assert len(lines) == (2 if columns == 100 else 3), lines
        assert f"run dir {relative}" in text and "gradient flow" not in text
    else:
        assert f"  run dir: {relative}" in lines
        command = text.split("gradient flow: ", 1)[1]
        assert shlex.split(command.replace("\\\n", " ")) == shlex.split(
            console.plot_command(run_dir))


def test_a_quoted_word_is_never_broken(tmp_path):
    from rnnlab.run.console import command_lines

    command = f"rnnlab-plot-gradflow '{tmp_path}/a folder with spaces/run'"
    lines = command_lines(command, "gradient flow: ", 30).splitlines()
    assert lines[-1].strip() == f"'{tmp_path}/a folder with spaces/run'"
