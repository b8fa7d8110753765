"""The training progress bar stays one line in the terminal (issue 39, item 2): the metrics that
fit beside the bar, the headline first, with three significant digits; no ``v_num``."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.run.progress import ProgressBar, fitting_metrics

METRICS = {"v_num": "6xy_", "train/loss": 0.217, "val/loss": 0.000128, "val/mae": 0.369,
           "val/mse": 0.2}


def test_the_metrics_that_fit_headline_first():
    assert fitting_metrics(METRICS, 200, "val/loss") == (
        "val/loss: 0.000128 train/loss: 0.217 val/mae: 0.369 val/mse: 0.2")
    assert fitting_metrics(METRICS, 40, "val/loss") == "val/loss: 0.000128 train/loss: 0.217"
    # a metric that does not fit is skipped, a shorter one after it may still fit
    assert fitting_metrics(METRICS, 33, "val/loss") == "val/loss: 0.000128 val/mae: 0.369"
    assert fitting_metrics(METRICS, 5, "val/loss") == ""
    assert fitting_metrics({"train/loss": 1.5}, 40, "val/loss") == "train/loss: 1.5"


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        for name in ("val/loss", "val/mae", "val/mse", "val/a_long_metric_name"):
            self.log(name, loss, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize("width", [100, 80])
def test_the_bar_of_a_fit_is_one_line_that_fits_the_terminal(tmp_path, width):
    buffer = io.StringIO()
    bar = ProgressBar(console_kwargs={"width": width, "file": buffer, "force_terminal": False})
    loader = DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=4)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val/loss")
    trainer = L.Trainer(max_epochs=2, callbacks=[bar, checkpoint], default_root_dir=tmp_path,
                        logger=L.pytorch.loggers.CSVLogger(tmp_path), enable_model_summary=False,
                        accelerator="cpu", devices=1)
    trainer.fit(_Tiny(), loader, loader)
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    epoch = [line for line in lines if line.startswith("Epoch 1/1")]
    assert len(epoch) == 1, lines
    assert max(len(line) for line in lines) <= width, lines
    # the line after the bar is not a wrapped rest of its metrics
    after = lines[lines.index(epoch[0]) + 1:]
    assert not any(line.startswith(" ") for line in after), lines
    assert "0:00:00 • 0:00:00" in epoch[0]  # the time column whole on it
    assert "val/loss: " in epoch[0] and "v_num" not in epoch[0]
    if width == 100:  # 80 columns: the headline alone
        assert epoch[0].index("val/loss: ") < epoch[0].index("train/loss: ")
