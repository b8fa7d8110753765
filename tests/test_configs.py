"""Every config in every group composes; bad overrides fail with one clear line."""

from __future__ import annotations

import pytest
from conftest import CONF, cli, compose_config

GROUPS = ["data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks", "debug",
          "experiment", "hparams_search"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


CASES = [(group, option) for group in GROUPS for option in _options(group)]


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_every_config_composes(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}"], tmp_path)
    assert cfg.model.cell in ("rnn", "gru", "lstm")
    assert cfg.data.name
    # Resolving every interpolation catches dangling references.
    from omegaconf import OmegaConf

    OmegaConf.to_container(cfg, resolve=True)


def test_there_is_something_to_compose():
    groups = {group for group, _ in CASES}
    assert {"data", "model", "optimizer", "trainer", "logger", "experiment"} <= groups


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.hiden_size=8", "hiden_size"),
        ("model.hidden_size=abc", "hidden_size"),
        ("model=gruu", "gruu"),
        ("data.seq_len=0", "data.seq_len"),
        ("optimizer.lr=fast", "lr"),
        ("model=rnn model.forget_bias=1", "model.forget_bias"),
        ("model.init=zeros", "init"),
    ],
)
def test_bad_override_is_one_clear_line(override, expected, tmp_path):
    result = cli([*override.split(), "debug=fast", "logger=csv"], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    # Nothing half-written: no run directory with a results.json or a checkpoint.
    assert not list(tmp_path.rglob("results.json"))
    assert not list(tmp_path.rglob("*.ckpt"))


def test_unknown_group_choice_lists_the_choices(tmp_path):
    result = cli(["model=gruu"], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    for choice in ("rnn", "gru", "lstm"):
        assert choice in result.stderr
