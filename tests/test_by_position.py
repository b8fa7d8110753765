"""rnnlab-by-position (rnnlab.commands.by_position over rnnlab.results.by_position): per-position
the trained length's accuracy equal to the run's test/acc, fresh longer test sets, and one-line
refusals."""

from __future__ import annotations

import json

import pytest
import torch

from rnnlab.commands.by_position import main
from rnnlab.results.by_position import binned, position_counts


class _Fixed(torch.nn.Module):
    """Predicts class 1 at every step."""

    def forward(self, x, lengths=None):
        logits = torch.zeros(*x.shape[:2], 2)
        logits[..., 1] = 1.0
        return logits


def test_counts_respect_lengths_and_the_score_mask_by_hand():
    y = torch.tensor([[1, 0, 1, 1], [0, 1, 1, 0]])
    batches = [{"x": torch.zeros(2, 4), "y": y, "lengths": torch.tensor([4, 2]),
                "score_mask": torch.tensor([[True, True, False, True]] * 2)},
               {"x": torch.zeros(1, 3), "y": torch.tensor([[1, 1, 0]])}]
    correct, scored = position_counts(_Fixed(), batches)
    # t=0: rows (1, 0) scored and the third batch's 1: hits 1 + 0 + 1; t=1: 0, 1 and 1;
    # t=2: row 0 unscored by the mask, row 1 past its length, third batch 0 -> 0 of 1;
    # t=3: row 0 only (row 1 is past its length)
    assert scored == [3, 3, 1, 1] and correct == [2, 2, 0, 1]
    assert binned(correct, scored, 2) == [{"first": 1, "last": 2, "acc": 4 / 6},
                                          {"first": 3, "last": 4, "acc": 1 / 2}]
    # copy-like: only the scored positions are binned, and never more bins than positions
    assert binned([0, 0, 3, 1], [0, 0, 4, 4], 8) == [{"first": 3, "last": 3, "acc": 0.75},
                                                     {"first": 4, "last": 4, "acc": 0.25}]


def test_a_parity_run_by_position_and_at_twice_its_length(run_training, capsys):
    results, run_dir = run_training(["data=parity", "data.seq_len=12", "data.test_size=16",
                                     "model=gru", "model.hidden_size=6", "debug=fast",
                                     "logger=csv"])
    assert main([str(run_dir), "--seq-len", "12,24", "--bins", "4"]) == 0
    written = json.loads((run_dir / "by_position.json").read_text())
    at12, at24 = written["lengths"]["12"], written["lengths"]["24"]
    # the trained length is the run's own test split: its accuracy is the run's test/acc
    assert at12["acc"] == pytest.approx(results["metrics"]["test/acc"], abs=1e-6)
    assert at12["scored"] == [16] * 12 and at24["scored"] == [16] * 24
    assert [b["first"] for b in at24["bins"]] == [1, 7, 13, 19]
    assert at24["acc"] == pytest.approx(sum(at24["correct"]) / (16 * 24))
    out = capsys.readouterr().out
    assert "T = 24:" in out and "| t 19–24 |" in out


def test_refusals_are_one_line(run_training, capsys):
    _, run_dir = run_training(["data=adding", "data.seq_len=8", "model=rnn",
                               "model.hidden_size=4", "debug=fast", "logger=csv"])
    capsys.readouterr()  # the training's own lines (its phases are announced on stderr)
    assert main([str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last_regression" in err and "step_classification" in err
    assert main([str(run_dir / "missing")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit):
        main([str(run_dir), "--seq-len", "0,8"])
    assert "--seq-len values must be >= 1" in capsys.readouterr().err
    assert not (run_dir / "by_position.json").exists()
