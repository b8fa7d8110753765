"""The classical baselines a practitioner tries first, scored on exactly a run's test split.

* Forecasting (``data=timeseries``): last value and seasonal naive (the data module's own),
  ARIMA(2,1,1) and additive-trend exponential smoothing with the series' season (ETS), both
  fitted once on everything before the test split (train + val, what the cells saw for training
  and model selection) and then run over the test windows with the fitted parameters fixed:
  each forecast uses only values before its window, for the run's horizon, in original units.
* Text classification (``data=sentiment``): the majority class and a bag-of-words logistic
  regression (word counts of the module's own tokens, sklearn, L2, C = 1) on the same split.

Each function returns rows ``{"baseline": name, "test/mse": ..., ...}`` whose metric names are
the runs' own, so a table can put them beside the cells.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

ARIMA_ORDER = (2, 1, 1)


def _fixed_forecasts(results, values: np.ndarray, starts: np.ndarray, end: int,
                     horizon: int) -> np.ndarray:
    """(len(starts), horizon) forecasts of a fitted statsmodels state-space model, parameters
    fixed, each from the values before its window."""
    applied = results.apply(values[:end])
    if horizon == 1:
        return np.asarray(applied.predict())[starts][:, None]
    out = np.empty((len(starts), horizon))
    for i, t in enumerate(starts):
        out[i] = applied.get_prediction(start=int(t), end=int(t) + horizon - 1,
                                        dynamic=0).predicted_mean
    return out


def forecast_baselines(dm, ets: bool = True) -> list[dict[str, Any]]:
    """Naive, ARIMA and ETS forecasts on a set-up TimeSeriesDataModule's test windows."""
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    dm.setup()
    values, starts, horizon = dm.values, dm.starts["test"], dm.horizon
    fit_end, test_end = dm.bounds["test"][0], dm.bounds["test"][1]
    targets = np.stack([values[t:t + horizon] for t in starts])
    naive = dm.baselines()
    rows = [{"baseline": "last value", "test/mse": naive["mse_last_value"],
             "test/mae": naive["mae_last_value"]}]
    if "mse_seasonal_naive" in naive:
        rows.append({"baseline": f"seasonal naive (m = {dm.period})",
                     "test/mse": naive["mse_seasonal_naive"],
                     "test/mae": naive["mae_seasonal_naive"]})
    models = [(f"ARIMA{ARIMA_ORDER}", lambda y: SARIMAX(y, order=ARIMA_ORDER))]
    if ets:
        season = dm.period if dm.period and dm.period > 1 else None
        name = f"ETS (additive trend{f', season {season}' if season else ''})"
        models.append((name, lambda y: ExponentialSmoothing(y, trend=True, seasonal=season)))
    for name, make in models:
        with warnings.catch_warnings():  # convergence chatter; the score says how it did
            warnings.simplefilter("ignore")
            fitted = make(values[:fit_end]).fit(disp=False)
            forecast = _fixed_forecasts(fitted, values, starts, test_end, horizon)
        error = forecast - targets
        rows.append({"baseline": name, "test/mse": float(np.mean(error ** 2)),
                     "test/mae": float(np.mean(np.abs(error)))})
    return rows


def text_baselines(dm) -> list[dict[str, Any]]:
    """Majority class and bag-of-words logistic regression on a SentimentDataModule's split."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    dm.setup()
    tables = dm.tables
    docs = {s: [" ".join(tokens) for tokens in tables[s]["tokens"]] for s in ("train", "test")}
    labels = {s: np.asarray(tables[s]["label"]) for s in ("train", "test")}
    # The module's tokens as they are (no lowercasing or splitting again).
    vectorizer = CountVectorizer(tokenizer=str.split, lowercase=False, token_pattern=None)
    train = vectorizer.fit_transform(docs["train"])
    model = LogisticRegression(C=1.0, max_iter=2000).fit(train, labels["train"])
    predicted = model.predict(vectorizer.transform(docs["test"]))
    average = "binary" if dm.num_classes == 2 else "macro"
    majority = dm.spec.baselines
    return [
        {"baseline": "majority class", "test/acc": majority["acc"], "test/f1": majority["f1"]},
        {"baseline": "bag-of-words logistic regression",
         "test/acc": float(np.mean(predicted == labels["test"])),
         "test/f1": float(f1_score(labels["test"], predicted, average=average))},
    ]


def baselines_for(data_config: dict) -> list[dict[str, Any]] | None:
    """The baselines of a run's data config (results.json's ``config.data``), or None for a
    task that has none here (the synthetic tasks carry their own baseline/loss)."""
    from hydra.utils import instantiate

    name = data_config.get("name")
    if name not in ("timeseries", "sentiment"):
        return None
    dm = instantiate({k: v for k, v in data_config.items()})
    return forecast_baselines(dm) if name == "timeseries" else text_baselines(dm)
