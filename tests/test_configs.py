"""Every config in every group composes; bad overrides fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF, cli, compose_config

from rnnlab.config.composition import command_line_error

GROUPS = ["data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "debug",
          "experiment", "hparams_search"]


def _options(group: str) -> list[str]:
    if group == "model":  # the cells are stored from their registry entries, not YAML files
        from rnnlab.config.cellspecs import SPECS

        return sorted(SPECS)
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [(group, option) for group in GROUPS for option in _options(group)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_config_composes(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], tmp_path)
    from rnnlab.config.cellspecs import SPECS

    assert cfg.model.cell in SPECS
    if group == "model":
        assert cfg.model.cell == option, "each model option is its own cell's schema"
    assert cfg.data.name
    # Resolving every interpolation catches dangling references.
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)


def test_there_is_something_to_compose():
    groups = {group for group, _ in CASES}
    assert {"data", "model", "optimizer", "trainer", "logger", "experiment"} <= groups


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["model.hiden_size=8"],
         "model.hiden_size is not a setting of model (did you mean model.hidden_size?)"),
        (["model.hidden_size=abc"],
         "model.hidden_size=abc: Value 'abc' of type 'str' could not be converted to Integer"),
        (["model=rnn", "model.forget_bias=1"],
         "model.forget_bias is not a setting of model; its settings: cell, dropout, "),
        (["-m", "model=gru,lstm", "model.forget_bias=1"],
         "model.forget_bias is not a setting of model"),
        (["model=indrnn", "model.init=orthogonal"], "model.init is not a setting of model"),
        (["model=gruu"],
         "model=gruu: no such option in 'model' (did you mean model=gru?); available: gru, "),
        (["data=nonexistent"], "data=nonexistent: no such option in 'data'; available: adding"),
        (["optimizer.lr=fast"], "optimizer.lr=fast"),
        (["-m", "model=gru,gruu", "seed=0,1"], "model=gruu: no such option"),
        (["-m", "seed=0,1", "hydra/launcher=joblibb"], "did you mean hydra/launcher=joblib?"),
        # refused here, before torch loads, like the typos above (they took 4-7 s, after it)
        (["+model.hiden_size=8"], ("model.hiden_size is not a setting of model=gru (did you "
                                   "mean model.hidden_size?); its settings: cell, chrono_tmax, "
                                   "dropout,")),
        (["data.seq_len=0"], "data.seq_len must be >= 1, got 0"),
        (["-m", "model.hidden_size=8,0"], "model.hidden_size must be >= 1, got 0"),
        (["model=lstm", "model.num_layers=2", "model.dropout=1"],
         "model.dropout must be in [0, 1), got 1.0"),
        (["optimizer.lr=0"], "optimizer.lr must be > 0, got 0"),
    ],
)
def test_a_command_line_that_does_not_compose_is_one_line(argv, expected):
    reason = command_line_error(argv, str(CONF), "train")
    assert reason is not None and expected in reason
    assert "\n" not in reason


@pytest.mark.parametrize("argv", [["experiment=quickstart"], ["-m", "model=rnn,gru", "seed=0,1"],
                                  ["-m", "hparams_search=optuna"], ["--help"], ["+extra=1"]])
def test_a_command_line_that_composes_passes(argv):
    assert command_line_error(argv, str(CONF), "train") is None


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.seq_len=0", "data.seq_len"),
        ("model=lstm model.layer_norm=true model.impl=fused",
         "model.layer_norm=True needs model.impl=scratch"),
        ("model=mingru model.impl=fused", "model=mingru has no torch.nn kernel"),
        ("model.init=zeros", "init"),
        ("data.num_workers=-1", "data.num_workers must be >= 0"),
        ("data=adding monitor.metric=val/acc",
         ("monitor.metric=val/acc is not logged during training with data=adding; it logs "
          "train/loss, train/mae, train/mse, val/loss, val/mae, val/mse and "
          "gradflow/<layer>/<summary>")),
        ("monitor.metric=test/acc", "monitor.metric=test/acc is not logged during training"),
        ("callbacks.early_stopping.patience=abc",
         ("callbacks.early_stopping.patience must be an integer >= 1 (validations without "
          "improvement) or null (never stop early), got 'abc'")),
        ("callbacks.early_stopping.patience=0", "callbacks.early_stopping.patience must be"),
        ("callbacks.gradflow._target_=rnnlab.gradflow.Nope",
         "Error loading 'rnnlab.gradflow.Nope': ModuleNotFoundError"),
    ],
)
def test_a_setting_refused_before_training_is_one_line(override, expected, run_training, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_training([*override.split(), "debug=fast", "logger=csv"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnlab-train: error:") and expected in err[0]


def test_the_cli_refuses_a_typo_in_one_line_with_exit_2_and_writes_nothing(tmp_path):
    result = cli(["model.hiden_size=8", "debug=fast"], cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    expected = ("rnnlab-train: error: model.hiden_size is not a setting of model (did you mean "
                "model.hidden_size?); its settings: cell, chrono_tmax, dropout, embedding_dim, "
                "encoder, "
                "hidden_size, impl, init, layer_norm, num_layers, param_budget, "
                "record_grad_norms, reset, variant, zoneout")  # no "+" advice: a schema's node
    assert result.stderr.strip().splitlines() == [expected]
    assert not list(tmp_path.rglob("*")), "nothing is written"


def test_gru_reset_defaults_to_each_variants_own_form(tmp_path):
    from omegaconf import OmegaConf

    from rnnlab.data.base import DataSpec
    from rnnlab.model.models import SequenceModel

    spec = DataSpec("step_classification", output_size=3, vocab_size=3)
    for variant, reset in (("gru", "after"), ("no_reset", "after"), ("mgu", "before")):
        cfg = compose_config(["model=gru", f"model.variant={variant}"], tmp_path)
        model = SequenceModel(spec, **OmegaConf.to_container(cfg.model))
        assert model.rnn.reset == reset, variant
    cfg = compose_config(["model=gru", "model.variant=mgu", "model.reset=after"], tmp_path)
    assert SequenceModel(spec, **OmegaConf.to_container(cfg.model)).rnn.reset == "after"


@pytest.mark.parametrize(("overrides", "metric", "mode"), [
    ([], "val/loss", "min"),
    (["monitor.metric=val/acc"], "val/acc", "max"),
    (["monitor.metric=val/f1"], "val/f1", "max"),
    (["monitor.metric=val/nll"], "val/nll", "min"),
    # a metric the default rule reads as a loss, made to count as higher-is-better
    (["monitor.metric=gradflow/layer0/horizon", "monitor.mode=max"],
     "gradflow/layer0/horizon", "max"),
    (["monitor.metric=val/acc", "monitor.mode=min"], "val/acc", "min"),
])
def test_the_monitor_decides_every_direction(overrides, metric, mode, tmp_path):
    cfg = compose_config([*overrides, "scheduler=plateau", "hparams_search=optuna"], tmp_path)
    assert (cfg.monitor.metric, cfg.monitor.mode) == (metric, mode)
    for callback in ("model_checkpoint", "early_stopping"):
        assert cfg.callbacks[callback].monitor == metric
        assert cfg.callbacks[callback].mode == mode
    assert cfg.scheduler.mode == mode
    from hydra.core.hydra_config import HydraConfig

    assert HydraConfig.get().sweeper.direction == f"{mode}imize"


@pytest.mark.parametrize(("argv", "expected"), [
    (["monitor=val/acc"], ("monitor=val/acc is not a setting: monitor is {metric, mode}; use "
                           "monitor.metric=val/acc (and monitor.mode=min|max if needed)")),
    (["monitor.mode=maximum"], "monitor.mode='maximum' is not one of min, max"),
    (["-m", "monitor.mode=min,up"], "monitor.mode='up' is not one of min, max"),
    (["monitor.metrc=val/acc"], ("monitor.metrc is not a setting of monitor (did you mean "
                                 "monitor.metric?); its settings: metric, mode")),
])
def test_a_bad_monitor_is_refused_at_composition(argv, expected):
    reason = command_line_error(argv, str(CONF), "train")
    assert reason is not None and reason.startswith(expected)


@pytest.mark.parametrize(("override", "expected"), [
    ("model.dropout=0.3", "model.dropout=0.3 acts between layers"),
    ("model.param_budget=5000 model.hidden_size=64", "model.hidden_size and model.param_budget"),
])
def test_contradictory_model_settings_are_refused(override, expected, run_training, capsys):
    with pytest.raises(SystemExit):
        run_training([*override.split(), "debug=fast", "logger=csv"])
    assert expected in capsys.readouterr().err


def test_refusing_a_command_line_needs_neither_torch_nor_lightning():
    """rnnlab-train checks the command line before it imports the heavy stack (a typo is
    refused in about a second instead of the 10+ s Lightning's import takes)."""
    import subprocess
    import sys

    code = ("import sys, rnnlab.commands.train, rnnlab.config.schemas, rnnlab.config.composition; "
            "print(sorted(m for m in ('torch', 'lightning', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_help_lists_every_group_and_the_composed_config_without_loading_torch():
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['rnnlab-train', 'model=lstm', '--help']; "
            "from rnnlab.commands.train import main; main(); "
            "print('loaded:', sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    page = done.stdout
    from rnnlab.commands.train import GROUP_HELP

    for group in GROUPS:
        assert f"\n  {group} " in page, group
        assert GROUP_HELP[group] in page, f"{group} has its one-line description"
    # the internal schema groups stay out of it
    assert "schema" not in page.replace("as in its schema", "")
    assert "gru_variants" in page and "The config of model=lstm" in page
    assert "cell: lstm" in page
    assert page.rstrip().endswith("loaded: []")


def test_help_with_a_bad_override_says_why_there_is_no_config():
    from rnnlab.commands.train import help_text

    page = help_text(["model=gruu"])
    assert "(no config: model=gruu: no such option in 'model'" in page


def test_the_code_defaults_are_the_schema_defaults():
    """Every setting's default lives in rnnlab.config.schemas; where a constructor also has one (the
    Python API), it must be the same value, so the two can never drift apart."""
    import importlib
    import inspect

    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    import rnnlab.config.schemas  # noqa: F401  (registers the schemas read below)
    from rnnlab.config.cellspecs import SPECS
    from rnnlab.model.models import SequenceModel

    def defaults(fn) -> dict:
        return {name: p.default for name, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}

    store = ConfigStore.instance().repo
    checked = 0
    for group in ("data", "model"):
        # the datasets' schemas under schema/data; the cells' are the model group's options
        for node in (store["schema"] if group == "data" else store)[group].values():
            schema = OmegaConf.to_container(node.node)
            if group == "data":
                module, _, name = schema["_target_"].rpartition(".")
                targets = [getattr(importlib.import_module(module), name)]
            else:
                targets = [SequenceModel, SPECS[schema["cell"]].implementation("scratch")]
            for target in targets:
                code = defaults(target)
                for key, value in schema.items():
                    # null in a schema means "the code's own default" (e.g. model.variant);
                    # an interpolation (${paths.data_dir}) has no code twin
                    if (key in code and value is not None and key not in ("_target_", "cell")
                            and not (isinstance(value, str) and value.startswith("${"))):
                        assert code[key] == value, f"{target.__name__}({key}={code[key]!r}) " \
                                                   f"but the schema says {value!r}"
                        checked += 1
    assert checked > 30

    # The settings whose YAML is the CLI's and whose class is the Python API's: the callbacks
    # (no schema: their YAML names every key so that the command line can set it) and the task.
    from rnnlab.model.task import SequenceTask

    train = OmegaConf.load(CONF / "train.yaml")
    assert defaults(SequenceTask)["divergence_factor"] == train.divergence_factor
    callbacks = OmegaConf.load(CONF / "callbacks" / "default.yaml")
    callbacks.merge_with(OmegaConf.load(CONF / "callbacks" / "gradflow.yaml"))
    compared = 0
    for name in ("gradflow", "mid_epoch_checkpoint"):
        node = OmegaConf.to_container(callbacks[name], resolve=False)
        module, _, cls = node.pop("_target_").rpartition(".")
        code = defaults(getattr(importlib.import_module(module), cls))
        for key, value in node.items():
            if key in code and not (isinstance(value, str) and "${" in value):
                assert code[key] == value, f"{cls}({key}={code[key]!r}) but the YAML says {value!r}"
                compared += 1
    assert compared >= 8


def test_the_cell_registry_is_the_one_list_of_cells():
    """Each rnnlab.config.cellspecs entry is the `model` group's option of its name (stored from its
    schema; no conf/model YAML) with classes that load; there is no cell elsewhere (adding one
    = its module and its entry)."""
    from hydra.core.config_store import ConfigStore

    from rnnlab.config.cellspecs import SPECS
    from rnnlab.config.schemas import MODEL_SCHEMAS

    assert not (CONF / "model").exists()
    stored = {Path(n).stem for n in ConfigStore.instance().list("model")}
    assert stored == set(SPECS) == set(MODEL_SCHEMAS)
    for name, spec in SPECS.items():
        node = ConfigStore.instance().load(f"model/{name}.yaml")
        assert node.package == "model" and node.node.cell == name
        assert spec.summary and "\n" not in spec.summary
        assert spec.implementation("scratch").__name__
        assert (spec.fused is None) == (not spec.fused_only)
        if spec.fused:
            assert spec.implementation("fused").__module__ == "rnnlab.cells.fused"
        assert set(spec.fused_only) <= set(spec.options)
    inits = {i for spec in SPECS.values() for i in spec.inits}
    from rnnlab.cells.init import INIT_SCHEMES

    assert inits == set(INIT_SCHEMES)


@pytest.mark.parametrize(("setting", "value"), [("num_layers", 0), ("dropout", 1.0),
                                                ("dropout", -0.1)])
def test_the_python_api_refuses_a_bound_in_the_command_lines_words(setting, value):
    """One range per setting (schemas.BOUNDS): SequenceModel refuses what the command line
    refuses, with the same line."""
    from rnnlab.config.errors import ConfigError
    from rnnlab.config.schemas import out_of_bounds
    from rnnlab.data.base import DataSpec
    from rnnlab.model.models import SequenceModel

    spec = DataSpec("step_classification", output_size=3, vocab_size=3)
    line = out_of_bounds(f"model.{setting}", value)
    assert line is not None
    options = {"num_layers": 2, setting: value}
    with pytest.raises(ConfigError) as error:
        SequenceModel(spec, cell="gru", **options)
    assert str(error.value) == line
    assert command_line_error(["model=gru", "model.num_layers=2", f"model.{setting}={value}"],
                              str(CONF), "train") == line
