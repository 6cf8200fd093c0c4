"""Multivariate drift: changes in how the features move together, which no single
column's statistics show (a correlation that flips sign keeps every marginal).

Two checks, each with its threshold in the report:

- data reconstruction (as NannyML's DataReconstructionDriftCalculator): the
  features (numbers standardised, categories frequency-encoded) are projected
  by a PCA fitted on the reference that keeps `variance` of it, and mapped
  back; the mean reconstruction error of a window is judged against a band
  from the reference's own chunks (their mean ± `band` standard deviations,
  the standard deviation scaled to the window's row count);
- domain classifier: a model learns to tell reference rows from the window's
  (`sample_rows` per side, 3-fold cross-validated); a ROC AUC above `auc`
  (raised for small samples to 0.5 + 4 standard errors) means the two can be
  told apart. By default the model is Gaussian (quadratic discriminant: a mean
  and a covariance per side, so a shifted mean, spread or correlation tells
  them apart) in numpy; `model: gradient_boosting` uses scikit-learn's
  HistGradientBoosting (also non-linear differences; imports scikit-learn, ~1 s).

The PCA is an eigendecomposition of the reference sample's covariance, so a
default run imports no scikit-learn.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlship.drift.samples import ALL, RowSample, chunk_rows, floats
from mlship.drift.settings import MultivariateSettings
from mlship.metrics import label_text, roc_auc

FOLDS = 3


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReconstructionWindow(_Part):
    """One window's (or all current rows') mean reconstruction error against the band."""

    label: str
    rows: int = Field(description="Rows the error was averaged over (a uniform sample of the window).")
    error: float
    lower: float
    upper: float
    drifted: bool


class Reconstruction(_Part):
    """The data-reconstruction check: PCA fitted on the reference."""

    columns: list[str]
    components: int
    explained_variance: float = Field(description="Share of the reference's variance the components keep.")
    reference_error: float = Field(description="Mean reconstruction error of the reference's chunks.")
    reference_std: float = Field(description="Standard deviation of the chunks' mean errors.")
    chunk_rows: int
    chunks: int
    band: float = Field(description="Standard deviations either side of the reference error.")
    overall: ReconstructionWindow
    windows: list[Optional[ReconstructionWindow]] = Field(description="Per window, in order (null: too small).")


class ClassifierWindow(_Part):
    """One window's (or all current rows') domain-classifier ROC AUC against its threshold."""

    label: str
    rows: int = Field(description="Current rows the classifier saw (beside as many reference rows at most).")
    reference_rows: int
    auc: float
    threshold: float
    drifted: bool


class DomainClassifier(_Part):
    """The domain-classifier check: reference rows against current ones."""

    columns: list[str]
    model: str
    folds: int
    overall: ClassifierWindow
    windows: list[Optional[ClassifierWindow]]


class MultivariateDrift(_Part):
    """Both checks, and whether they count in the dataset verdict (monitoring.multivariate.verdict)."""

    drifted: bool
    flagged_by: list[str] = Field(description="The checks that flagged all current rows.")
    verdict: bool = Field(description="Whether a flag here means dataset drift (overall and per window).")
    reconstruction: Optional[Reconstruction] = None
    classifier: Optional[DomainClassifier] = None
    note: Optional[str] = Field(None, description="Why a check did not run.")

    def window_flags(self, index: int) -> list[str]:
        """The checks that flagged window `index`."""
        found = []
        for name, check in (("reconstruction", self.reconstruction), ("classifier", self.classifier)):
            entry = check.windows[index] if check is not None and index < len(check.windows) else None
            if entry is not None and entry.drifted:
                found.append(name)
        return found


def multivariate_drift(reference: RowSample, current: RowSample, features: dict[str, str],
                       windows: list[tuple[float, str, bool]], settings: MultivariateSettings,
                       min_rows: int) -> MultivariateDrift | None:
    """Both checks on the features (name -> numeric/categorical), overall and for each window
    (key, label, too small to judge); None when no check is asked for."""
    if not settings.checks:
        return None
    ref_rows = reference.rows()
    names = [n for n in features if n in ref_rows and n in current.rows()]
    note = _unfit(names, reference.count(), min_rows) if ref_rows else \
        "multivariate checks need the reference's rows (a saved profile holds none)"
    if note:
        return MultivariateDrift(drifted=False, flagged_by=[], verdict=settings.verdict, note=note)
    encoder = _Encoder(ref_rows, {n: features[n] for n in names})
    parts: dict[str, _Part] = {}
    # One BLAS thread: on a busy machine OpenBLAS's threads wait for each other, and a 100-column
    # covariance or inverse took ~100 ms instead of ~5.
    with _one_blas_thread():
        if "reconstruction" in settings.checks:
            parts["reconstruction"] = _reconstruction(encoder, ref_rows, current, windows, settings)
        if "classifier" in settings.checks:
            parts["classifier"] = _classifier(encoder, ref_rows, current, windows, settings)
    flagged = [name for name, part in parts.items() if part.overall.drifted]
    return MultivariateDrift(drifted=bool(flagged), flagged_by=flagged, verdict=settings.verdict, **parts)


def _one_blas_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency, not mlship's
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _unfit(names: list[str], reference_rows: int, min_rows: int) -> str | None:
    if len(names) < 2:
        return f"multivariate checks need two features or more on both sides, found {len(names)}"
    if reference_rows < 2 * min_rows:
        return f"multivariate checks need {2 * min_rows} reference rows, found {reference_rows}"
    return None


# -- encoding ------------------------------------------------------------------------


class _Encoder:
    """Features as numbers: reference means fill missing numbers; categories become their
    reference frequency (for the PCA, as NannyML) or their index (for the trees)."""

    def __init__(self, ref: dict[str, np.ndarray], kinds: dict[str, str]) -> None:
        self.kinds = kinds
        self.means: dict[str, float] = {}
        self.shares: dict[str, dict[str, float]] = {}
        self.codes: dict[str, dict[str, int]] = {}
        for name, kind in kinds.items():
            if kind == "numeric":
                values = floats(ref[name])
                self.means[name] = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
            else:
                cats, counts = np.unique(_texts(ref[name]), return_counts=True)
                self.shares[name] = dict(zip(cats.tolist(), (counts / counts.sum()).tolist()))
                self.codes[name] = {c: i for i, c in enumerate(cats.tolist())}
        self.columns = list(kinds)

    def dense(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """Missing numbers as the reference mean, categories as reference shares (unseen: 0)."""
        out = []
        for name in self.columns:
            if self.kinds[name] == "numeric":
                values = floats(rows[name])
                out.append(np.where(np.isfinite(values), values, self.means[name]))
            else:
                out.append(_lookup(rows[name], self.shares[name], 0.0))
        return np.column_stack(out)

    def trees(self, rows: dict[str, np.ndarray]) -> np.ndarray:
        """Numbers as they are (missing stays NaN), categories as reference indexes (unseen: -1)."""
        out = []
        for name in self.columns:
            if self.kinds[name] == "numeric":
                out.append(floats(rows[name]))
            else:
                out.append(_lookup(rows[name], self.codes[name], -1.0))
        return np.column_stack(out)



def _texts(values: np.ndarray) -> np.ndarray:
    """Category values as text, as profiles count them: a whole number is one category whether
    it came as 2 (a CSV's integers) or 2.0 (a log's JSON numbers)."""
    if values.dtype.kind == "f":  # through the distinct values: fast
        distinct, inverse = np.unique(values, return_inverse=True)
        return np.array([_text(v) for v in distinct.tolist()], dtype=object)[inverse.ravel()]
    items = values.tolist()
    try:
        distinct = dict.fromkeys(items)
    except TypeError:  # unhashable values
        distinct = {0: 0}
    if not all(type(v) is str or v is None for v in distinct):  # 1, 1.0 and True are one dict key
        return np.array([_text(v) for v in items], dtype=object)
    worded = {v: _text(v) for v in distinct}  # text columns: each distinct value worded once
    return np.array([worded[v] for v in items], dtype=object)


def _text(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "\0missing"
    return label_text(v)


def _lookup(values: np.ndarray, table: dict[str, float], unseen: float) -> np.ndarray:
    """Each value's entry in `table` (by its text), `unseen` for values not in it."""
    distinct, inverse = np.unique(_texts(values).astype(str), return_inverse=True)
    return np.array([table.get(v, unseen) for v in distinct.tolist()], dtype=np.float64)[inverse.ravel()]


def _mean_covariance(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows' mean and sample covariance (the PCA's and the Gaussian classifier's)."""
    mean = x.mean(axis=0)
    centred = x - mean
    return mean, centred.T @ centred / max(len(x) - 1, 1)


# -- data reconstruction --------------------------------------------------------------


class _Pca:
    """A PCA keeping `variance` of the rows' variance (components chosen as scikit-learn's
    PCA(n_components=variance) does), from the eigenvectors of their covariance."""

    def __init__(self, z: np.ndarray, variance: float) -> None:
        self.mean, covariance = _mean_covariance(z)
        values, vectors = np.linalg.eigh(covariance)
        order = np.argsort(values)[::-1]
        values, vectors = np.clip(values[order], 0, None), vectors[:, order]
        total = values.sum()
        ratio = values / total if total > 0 else np.full(len(values), 1 / len(values))
        self.n_components = min(int(np.searchsorted(np.cumsum(ratio), variance, side="right")) + 1, len(ratio))
        self.explained = float(ratio[: self.n_components].sum())
        self.components = vectors[:, : self.n_components]

    def reconstruct(self, z: np.ndarray) -> np.ndarray:
        """The rows projected on the components and mapped back."""
        return (z - self.mean) @ self.components @ self.components.T + self.mean


def _reconstruction(encoder: _Encoder, ref_rows: dict[str, np.ndarray], current: RowSample,
                    windows: list[tuple[float, str, bool]], settings: MultivariateSettings) -> Reconstruction:
    # Fitted on half the reference rows, the band from the other half: errors of rows the PCA was
    # fitted on are smaller than fresh rows' (a bias that alone flagged A/A samples).
    ref = encoder.dense(ref_rows)
    # Values are held to the reference's 0.1%-99.9% range: a heavy tail (Student t, lognormal) makes
    # mean errors jump with a few rows, which a band from the mean's standard error does not allow.
    fit, held = ref[0::2], ref[1::2]
    low, high = np.quantile(fit, 0.001, axis=0), np.quantile(fit, 0.999, axis=0)
    fit = np.clip(fit, low, high)
    center, scale = fit.mean(axis=0), fit.std(axis=0)
    scale[scale == 0] = 1.0
    pca = _Pca((fit - center) / scale, settings.variance)

    def errors(matrix: np.ndarray) -> np.ndarray:
        z = (np.clip(matrix, low, high) - center) / scale
        return np.linalg.norm(z - pca.reconstruct(z), axis=1)

    ref_errors = errors(held)
    chunk = chunk_rows(current, windows, len(ref_errors))
    means = ref_errors[: len(ref_errors) // chunk * chunk].reshape(-1, chunk).mean(axis=1)
    mu, sd = float(means.mean()), float(means.std(ddof=1))

    row_sd = float(ref_errors.std(ddof=1))

    def judge(key: float, label: str) -> ReconstructionWindow:
        err = errors(encoder.dense(current.rows(key)))
        # The chunks' spread, scaled to the window, never narrower than independent rows allow (a
        # spread from a few chunks is itself uncertain), plus the reference mean's own error.
        spread = max(sd * math.sqrt(chunk / len(err)), row_sd / math.sqrt(len(err)))
        half = settings.band * math.sqrt(spread ** 2 + row_sd ** 2 / len(ref_errors))
        value = float(err.mean())
        return ReconstructionWindow(label=label, rows=len(err), error=value, lower=mu - half, upper=mu + half,
                                    drifted=not (mu - half <= value <= mu + half))

    return Reconstruction(columns=encoder.columns, components=pca.n_components,
                          explained_variance=pca.explained, reference_error=mu,
                          reference_std=sd, chunk_rows=chunk, chunks=len(means), band=settings.band,
                          overall=judge(ALL, "all"),
                          windows=[None if small else judge(key, label) for key, label, small in windows])


# -- domain classifier -------------------------------------------------------------------


def _classifier(encoder: _Encoder, ref_rows: dict[str, np.ndarray], current: RowSample,
                windows: list[tuple[float, str, bool]], settings: MultivariateSettings) -> DomainClassifier:
    rng = np.random.default_rng(0)
    trees = settings.model == "gradient_boosting"
    encode = encoder.trees if trees else encoder.dense
    ref = encode(ref_rows)
    ref = ref[rng.permutation(len(ref))[: settings.sample_rows]]
    # The Gaussian model sees values standardised on the reference and held to its 0.1-99.9% range:
    # a few extreme rows would otherwise decide a covariance.
    low, high = np.quantile(ref, 0.001, axis=0), np.quantile(ref, 0.999, axis=0)
    center, scale = ref.mean(axis=0), ref.std(axis=0)
    scale[scale == 0] = 1.0

    def prepared(matrix: np.ndarray) -> np.ndarray:
        return matrix if trees else (np.clip(matrix, low, high) - center) / scale

    ref_x = prepared(ref)

    def judge(key: float, label: str) -> ClassifierWindow:
        cur = encode(current.rows(key))
        cur = prepared(cur[rng.permutation(len(cur))[: settings.sample_rows]])
        auc = _cv_auc_trees(ref_x, cur) if trees else _cv_auc_gaussian(ref_x, cur)
        threshold = max(settings.auc, 0.5 + 4 * _auc_se(len(ref_x), len(cur)))
        return ClassifierWindow(label=label, rows=len(cur), reference_rows=len(ref_x), auc=auc, threshold=threshold,
                                drifted=auc > threshold)

    return DomainClassifier(columns=encoder.columns, model=MODELS[settings.model], folds=FOLDS,
                            overall=judge(ALL, "all"),
                            windows=[None if small else judge(key, label) for key, label, small in windows])


MODELS = {"gaussian": "Gaussian (quadratic discriminant)", "gradient_boosting": "HistGradientBoostingClassifier"}
RIDGE = 1e-3  # added to each covariance's diagonal (standardised units): a constant column stays invertible


def _cv_auc_gaussian(ref: np.ndarray, cur: np.ndarray) -> float:
    """Cross-validated ROC AUC of a Gaussian per side (mean and covariance) telling `cur` rows (1)
    from `ref` rows (0): each held-out row scored by its log-likelihood ratio."""
    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref), dtype=bool), np.ones(len(cur), dtype=bool)]
    folds = _stratified_folds(y, FOLDS, np.random.default_rng(0))
    scores = np.empty(len(y))
    for fold in range(FOLDS):
        train, test = folds != fold, folds == fold
        scores[test] = _log_density(x[train & y], x[test]) - _log_density(x[train & ~y], x[test])
    return roc_auc(y, scores)


def _log_density(fit: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each row's Gaussian log density (up to a constant) under `fit`'s mean and covariance."""
    mean, cov = _mean_covariance(fit)
    cov += RIDGE * np.eye(fit.shape[1])
    inverse = np.linalg.inv(cov)
    diff = rows - mean
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (((diff @ inverse) * diff).sum(axis=1) + logdet)



def _stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """A fold number per row, each class spread evenly over the folds in a random order."""
    out = np.empty(len(y), dtype=np.int64)
    for side in (False, True):
        at = np.flatnonzero(y == side)
        out[rng.permutation(at)] = np.arange(len(at)) % folds
    return out


def _cv_auc_trees(ref: np.ndarray, cur: np.ndarray) -> float:
    """Cross-validated ROC AUC of gradient-boosted trees telling `cur` rows (1) from `ref` rows (0)."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        from mlship.errors import MissingExtraError

        raise MissingExtraError(f"monitoring.multivariate.model: gradient_boosting needs scikit-learn ({exc})",
                                hint="pip install scikit-learn, or use model: gaussian (the default)") from exc
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    x = np.vstack([ref, cur])
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    model = HistGradientBoostingClassifier(max_iter=40, learning_rate=0.15, max_leaf_nodes=15, early_stopping=False,
                                           random_state=0)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0)
    with threadpool_limits(1):  # OpenMP threads that spin-wait crawl on a busy machine
        probabilities = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, probabilities))


def _auc_se(n_ref: int, n_cur: int) -> float:
    """The standard error of a ROC AUC of 0.5 (Hanley and McNeil) for these sample sizes."""
    return math.sqrt((n_ref + n_cur + 1) / (12 * n_ref * n_cur))
