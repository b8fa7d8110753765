"""The baselines a reviewer runs first, scored on exactly a run's test split, beside the cells.

Every choice a baseline makes (an order, a form, a regularisation strength, a smoothing
probability) is picked on the run's **validation** split only, never on the test split, and its
row's name says what it is and what was picked from what.

* Forecasting (``data=timeseries``): last value and seasonal naive (the data module's own), and
  ARIMA and ETS whose form is picked by the validation MSE of their forecasts: ARIMA(p,1,q) with
  p, q <= 2, without and with drift (and, for a season m <= 24, with a seasonal (0,1,1)_m part:
  the "airline" form; longer seasons make the state-space fit take minutes), and ETS
  (statsmodels' ``ETSModel``, additive errors) with no / additive / damped trend and no /
  additive season. Each candidate is fitted on train and scored on the val windows; the
  picked one is refitted on everything before the test split (train + val) and run over the test
  windows with its parameters fixed: every forecast uses only values before its window, for the
  run's horizon, in the series' own units - the units of the cells' test/mse and test/mae in
  either ``data.normalization``.
* Text classification (``data=sentiment``): the majority class; a bag-of-words logistic
  regression on unigram + bigram counts of the module's own tokens; and NBSVM's features (Wang &
  Manning 2012: binary unigrams + bigrams scaled by their naive-Bayes log-count ratios, fitted on
  train) with logistic regression (NB-LR). C of both by validation accuracy over 10^-2 .. 10^2.
* Polyphonic music (``data=music``): independent keys at the training frequencies, and repeat the
  previous frame - the frame itself as the prediction (the task's frame accuracy,
  :class:`rnnlab.model.metrics.FrameAccuracy` at threshold 0.5) and, for a finite NLL, smoothed:
  each key on with probability 1 - eps where it was on, eps where it was off, eps the validation
  maximum likelihood (the fraction of keys that change between frames in the val pieces).
* Sequential MNIST (``data=seqmnist``): the majority class and a multinomial logistic regression
  on the 784 pixels / 255 (L2, C by validation accuracy over 10^-3 .. 10^1), trained on the run's
  train split; it ignores pixel order, so permuted MNIST scores the same.

Each function returns rows ``{"baseline": name, "test/<metric>": ...}`` whose metric names are
the runs' own, headline metric first, so a table can put them beside the cells.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

ARIMA_PQ = (0, 1, 2)  # p and q of the ARIMA(p,1,q) candidates
SEASONAL_ARIMA_MAX_PERIOD = 24  # longer seasons: the state-space fit takes minutes, skipped
TEXT_C_GRID = tuple(float(c) for c in np.round(10.0 ** np.arange(-2, 2.01, 0.5), 6))
PIXEL_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def _one_blas_thread(function):
    """Run ``function`` with one BLAS thread. The fits here multiply small or thin matrices,
    and a BLAS spinning threads on a busy machine makes them many times slower (the pixel
    regression: 87 s against 11 s on 2 busy cores; a 0.1 s ARIMA fit took 4 s)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with threadpool_limits(1):
            return function(*args, **kwargs)

    return wrapper


def _grid_text(grid: Sequence[float]) -> str:
    return f"{grid[0]:g} .. {grid[-1]:g} ({len(grid)} values)"


# ------------------------------------------------------------------------------ forecasting
def _windows(values: np.ndarray, starts: np.ndarray, horizon: int) -> np.ndarray:
    return np.stack([values[t:t + horizon] for t in starts])


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


class _Arima:
    """ARIMA(p,1,q) with or without drift, or ARIMA(p,1,q)(0,1,1)_m, through statsmodels'
    SARIMAX (its trend "t" with d = 1 is the drift: a constant in the differenced series)."""

    def __init__(self, order: tuple[int, int, int], season: int | None = None,
                 drift: bool = False):
        self.order, self.season, self.drift = order, season, drift

    @property
    def name(self) -> str:
        p, d, q = self.order
        return (f"ARIMA({p},{d},{q})" + (f"(0,1,1)_{self.season}" if self.season else "")
                + (" with drift" if self.drift else ""))

    def fit(self, y: np.ndarray):
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        seasonal = (0, 1, 1, self.season) if self.season else (0, 0, 0, 0)
        return SARIMAX(y, order=self.order, seasonal_order=seasonal,
                       trend="t" if self.drift else None).fit(disp=False)

    def forecasts(self, fitted, values, starts, end, horizon) -> np.ndarray:
        return _fixed_forecasts(fitted, values, starts, end, horizon)


class _Ets:
    """ETS(A, trend, season) through statsmodels' ETSModel (initial states estimated)."""

    def __init__(self, trend: str | None, damped: bool, season: int | None):
        self.trend, self.damped, self.season = trend, damped, season

    @property
    def name(self) -> str:
        trend = "N" if not self.trend else ("Ad" if self.damped else "A")
        return f"ETS(A,{trend},{'A' if self.season else 'N'})" + (
            f" m = {self.season}" if self.season else "")

    def model(self, y: np.ndarray):
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        return ETSModel(y, error="add", trend=self.trend, damped_trend=self.damped,
                        seasonal="add" if self.season else None,
                        seasonal_periods=self.season)

    def fit(self, y: np.ndarray):
        return self.model(y).fit(disp=False)

    def forecasts(self, fitted, values, starts, end, horizon) -> np.ndarray:
        params = fitted.params
        if horizon == 1:  # one-step fitted values of the fixed model over the whole stretch
            smoothed = self.model(values[:end]).smooth(params)
            return np.asarray(smoothed.fittedvalues)[starts][:, None]
        return np.stack([np.asarray(self.model(values[:t]).smooth(params).forecast(horizon))
                         for t in starts])


def _pick_on_val(candidates, values: np.ndarray, dm) -> tuple[Any, Any, dict[str, float]]:
    """Fit every candidate on train, score its forecasts of the val windows (MSE); the best one
    (the first of equals) and its fit on train + val. Candidates that fail to fit are skipped."""
    train_end = dm.bounds["train"][1]
    val_end = dm.bounds["val"][1]
    starts, horizon = dm.starts["val"], dm.horizon
    targets = _windows(values, starts, horizon)
    scores: dict[str, float] = {}
    best = None
    for candidate in candidates:
        try:
            fitted = candidate.fit(values[:train_end])
            forecast = candidate.forecasts(fitted, values, starts, val_end, horizon)
        except (np.linalg.LinAlgError, ValueError):  # a form the series cannot carry
            continue
        score = float(np.mean((forecast - targets) ** 2))
        if not np.isfinite(score):
            continue
        scores[candidate.name] = score
        if best is None or score < scores[best.name]:
            best = candidate
    if best is None:
        return None, None, scores
    return best, best.fit(values[:dm.bounds["test"][0]]), scores


def arima_candidates(period: int | None) -> list[_Arima]:
    """ARIMA(p,1,q) without and with drift, and ARIMA(p,1,q)(0,1,1)_m for a season m <= 24."""
    forms = [(None, False), (None, True)]
    if period and 1 < period <= SEASONAL_ARIMA_MAX_PERIOD:
        forms.append((period, False))
    return [_Arima((p, 1, q), season, drift) for season, drift in forms
            for p in ARIMA_PQ for q in ARIMA_PQ]


def ets_candidates(period: int | None) -> list[_Ets]:
    seasons = [None] + ([period] if period and period > 1 else [])
    trends = [(None, False), ("add", False), ("add", True)]
    return [_Ets(trend, damped, season) for season in seasons for trend, damped in trends]


@_one_blas_thread
def forecast_baselines(dm, arima: bool = True, ets: bool = True) -> list[dict[str, Any]]:
    """Naive, ARIMA and ETS forecasts on a TimeSeriesDataModule's test windows (its own units)."""
    # Imported before the warnings are silenced below: statsmodels' first import sets its own
    # warnings to "always", which would override the silencing from inside it.
    import statsmodels.tsa.exponential_smoothing.ets  # noqa: F401
    import statsmodels.tsa.statespace.sarimax  # noqa: F401

    dm.setup()
    values, starts, horizon = dm.values, dm.starts["test"], dm.horizon
    test_end = dm.bounds["test"][1]
    targets = _windows(values, starts, horizon)
    naive = dm.baselines()
    rows = [{"baseline": "last value", "test/mse": naive["mse_last_value"],
             "test/mae": naive["mae_last_value"]}]
    if "mse_seasonal_naive" in naive:
        rows.append({"baseline": f"seasonal naive (m = {dm.period})",
                     "test/mse": naive["mse_seasonal_naive"],
                     "test/mae": naive["mae_seasonal_naive"]})
    period = dm.period if dm.period and dm.period > 1 else None
    families = []
    if arima:
        seasonal = period and period <= SEASONAL_ARIMA_MAX_PERIOD
        space = "ARIMA(p,1,q), p, q <= 2, with or without drift" + (
            f", or with (0,1,1)_{period}" if seasonal else "")
        families.append((arima_candidates(period), space))
    if ets:
        space = "ETS(A, N/A/Ad, N" + (f"/A m = {period})" if period else ")")
        families.append((ets_candidates(period), space))
    for candidates, space in families:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the score says how it did
            picked, fitted, scores = _pick_on_val(candidates, values, dm)
            if picked is None:
                continue
            forecast = picked.forecasts(fitted, values, starts, test_end, horizon)
        error = forecast - targets
        rows.append({"baseline": f"{picked.name} (by val MSE among {len(scores)}: {space}; "
                                 "refit on train + val)",
                     "test/mse": float(np.mean(error ** 2)),
                     "test/mae": float(np.mean(np.abs(error)))})
    return rows


# ------------------------------------------------------------------------- classification
def _pick_c(fit: Callable[[float], Any], score: Callable[[Any], float],
            grid: Sequence[float]) -> tuple[float, Any, float]:
    """(C, model, val score) of the best validation score over ``grid`` (ascending: among
    equals the smallest C, the strongest regularisation)."""
    best = None
    for c in grid:
        model = fit(c)
        value = score(model)
        if best is None or value > best[2]:
            best = (c, model, value)
    return best


def _scores(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict[str, float]:
    """The runs' acc (micro) and f1 (binary for 2 classes, else macro)."""
    from sklearn.metrics import f1_score

    average = "binary" if num_classes == 2 else "macro"
    return {"test/acc": float(np.mean(predicted == labels)),
            "test/f1": float(f1_score(labels, predicted, average=average, zero_division=0))}


def nb_ratios(features, labels: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """NBSVM's log-count ratios r = log((p / |p|_1) / (q / |q|_1)), p = alpha + the binary
    feature counts of the positive class, q of the negative (Wang & Manning 2012)."""
    binary = (features > 0).astype(np.float64)
    p = alpha + np.asarray(binary[labels == 1].sum(0)).ravel()
    q = alpha + np.asarray(binary[labels != 1].sum(0)).ravel()
    return np.log(p / p.sum()) - np.log(q / q.sum())


@_one_blas_thread
def text_baselines(dm, grid: Sequence[float] = TEXT_C_GRID) -> list[dict[str, Any]]:
    """Majority class, bag-of-words LR and NB-LR on a SentimentDataModule's split (C on val)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    dm.setup()
    tables = dm.tables
    splits = ("train", "val", "test")
    docs = {s: [" ".join(tokens) for tokens in tables[s]["tokens"]] for s in splits}
    labels = {s: np.asarray(tables[s]["label"]) for s in splits}
    # The module's own tokens as they are (no lowercasing or splitting again), n-grams of them.
    vectorizer = CountVectorizer(tokenizer=str.split, lowercase=False, token_pattern=None,
                                 ngram_range=(1, 2))
    counts = {"train": vectorizer.fit_transform(docs["train"])}
    counts.update({s: vectorizer.transform(docs[s]) for s in ("val", "test")})
    rows = [{"baseline": "majority class", "test/acc": dm.spec.baselines["acc"],
             "test/f1": dm.spec.baselines["f1"]}]
    binary = dm.num_classes == 2
    features = {"bag-of-words LR (unigram + bigram counts)": counts}
    if binary:  # NB ratios are defined for two classes
        scale = sparse.diags(nb_ratios(counts["train"], labels["train"]))
        features["NB-LR (NBSVM features: binary unigrams + bigrams x NB log-count ratios)"] = {
            s: (x > 0).astype(np.float64) @ scale for s, x in counts.items()}
    for name, x in features.items():
        def fit(c, x=x):
            solver = "liblinear" if binary else "lbfgs"
            return LogisticRegression(C=c, solver=solver, max_iter=2000).fit(
                x["train"], labels["train"])

        c, model, val_acc = _pick_c(fit, lambda m, x=x: float(np.mean(
            m.predict(x["val"]) == labels["val"])), grid)
        rows.append({"baseline": f"{name}, C = {c:g} (by val acc {val_acc:.3f} over "
                                 f"C = {_grid_text(grid)})",
                     **_scores(labels["test"], model.predict(x["test"]), dm.num_classes)})
    return rows


@_one_blas_thread
def pixel_baselines(dm, grid: Sequence[float] = PIXEL_C_GRID) -> list[dict[str, Any]]:
    """Majority class and pixel logistic regression on a SeqMNISTDataModule's split (C on val)."""
    from sklearn.linear_model import LogisticRegression

    dm.setup()
    pixels = {s: dm.splits[s].tensors["x"].numpy().reshape(len(dm.splits[s]), -1) / 255.0
              for s in ("train", "val", "test")}
    labels = {s: dm.splits[s].tensors["y"].numpy() for s in pixels}
    c, model, val_acc = _pick_c(
        lambda c: LogisticRegression(C=c, max_iter=1000).fit(pixels["train"], labels["train"]),
        lambda m: float(np.mean(m.predict(pixels["val"]) == labels["val"])), grid)
    classes = dm.spec.output_size
    return [{"baseline": "majority class", "test/acc": dm.spec.baselines["acc"],
             "test/f1": dm.spec.baselines["f1"]},
            {"baseline": f"pixel logistic regression (784 pixels / 255, multinomial, L2), "
                         f"C = {c:g} (by val acc {val_acc:.3f} over C = {_grid_text(grid)}; "
                         "pixel order does not matter to it)",
             **_scores(labels["test"], model.predict(pixels["test"]), classes)}]


# ---------------------------------------------------------------------------------- music
def _frame_pairs(rolls) -> tuple[np.ndarray, np.ndarray]:
    """(previous frames, next frames) of pieces' rolls, each (frames, keys) float64."""
    rolls = [np.asarray(r, dtype=np.float64) for r in rolls]
    return (np.concatenate([r[:-1] for r in rolls]), np.concatenate([r[1:] for r in rolls]))


def frame_nll(probs: np.ndarray, targets: np.ndarray) -> float:
    """The task's nll: Bernoulli NLL summed over the keys, averaged over the frames."""
    return float(-(targets * np.log(probs) + (1 - targets) * np.log1p(-probs)).sum(1).mean())


def frame_accuracy(probs: np.ndarray, targets: np.ndarray) -> float:
    """The task's acc (FrameAccuracy: TP / (TP + FP + FN) pooled over frames, threshold 0.5)."""
    import torch

    from rnnlab.model.metrics import FrameAccuracy

    return float(FrameAccuracy()(torch.from_numpy(probs), torch.from_numpy(targets)))


def repeat_eps(previous: np.ndarray, targets: np.ndarray) -> float:
    """The maximum-likelihood flip probability eps of the smoothed repeat predictor (p = 1 - eps
    where the previous frame has the key on, eps where off): the fraction of keys that change,
    kept in [1e-6, 0.5]."""
    return float(np.clip(np.mean(previous != targets), 1e-6, 0.5))


def music_baselines(dm) -> list[dict[str, Any]]:
    """Independent keys and repeat-the-previous-frame on a MusicDataModule's test pieces."""
    dm.setup()
    rolls = {s: [r.numpy() for r in dm.splits[s].rolls] for s in ("train", "val", "test")}
    previous, targets = _frame_pairs(rolls["test"])
    frequency = np.clip(_frame_pairs(rolls["train"])[1].mean(0), 1e-4, 1 - 1e-4)
    prior = np.broadcast_to(frequency, targets.shape)
    eps = repeat_eps(*_frame_pairs(rolls["val"]))
    repeat = np.where(previous > 0.5, 1.0 - eps, eps)
    return [
        {"baseline": "independent keys at the training frequencies",
         "test/acc": frame_accuracy(np.ascontiguousarray(prior), targets),
         "test/nll": frame_nll(prior, targets)},
        {"baseline": f"repeat the previous frame (nll: a key on with 1 - eps where it was on, eps "
                     f"where off; eps = {eps:.4f}, the val maximum likelihood)",
         "test/acc": frame_accuracy(repeat, targets), "test/nll": frame_nll(repeat, targets)},
    ]


# ---------------------------------------------------------------------------------- entry
BASELINES = {"timeseries": forecast_baselines, "sentiment": text_baselines,
             "music": music_baselines, "seqmnist": pixel_baselines}


def baselines_for(data_config: dict, source: str = "results.json's config.data"
                  ) -> list[dict[str, Any]] | None:
    """The baselines of a run's data config (results.json's ``config.data``), or None for a
    task that has none here (the synthetic tasks carry their own baseline/loss). The config is
    a run's record, untrusted: one naming code outside rnnlab's config groups is refused
    (rnnlab.config.untrusted.UntrustedContent) before anything is instantiated."""
    from hydra.utils import instantiate

    from rnnlab.config import untrusted

    name = data_config.get("name")
    if name not in BASELINES:
        return None
    untrusted.check_config({"data": data_config}, source)
    dm = instantiate({k: v for k, v in data_config.items()})
    return BASELINES[name](dm)
