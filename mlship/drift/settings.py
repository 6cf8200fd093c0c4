"""Drift settings: one model for mlship.yaml's `monitoring:` section, the CLI and the analysis.

`DriftSettings` is the `monitoring:` section (config.py uses it as it is);
`DriftOptions` adds what one run compares (current data, window, labels,
reading limits) and is what `run_drift` takes. Flags override the file
(`DriftSettings.overridden`), keeping flag > env > file > default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from mlship.model.features import DeclaredFeatures

MIN_ROWS = 200  # fewer values than this: too small to judge (the README documents it)


class ColumnSettings(BaseModel):
    """Per-column drift settings."""

    model_config = ConfigDict(extra="forbid")

    kind: Optional[Literal["numeric", "categorical"]] = Field(None, description="Declare the column's type.")
    threshold: Optional[float] = Field(None, ge=0, description="Drift threshold for this column's effect size.")
    ignore: bool = Field(False, description="Leave the column out of drift checks.")
    role: Optional[Literal["feature", "identifier", "time"]] = Field(
        None, description="What the column is, over what is inferred: identifier and time columns are left out "
        "of drift; a time column can drive --window; feature judges a column inferred to be either.")


class MultivariateSettings(BaseModel):
    """Checks of the features together: a change in their relations that no single column shows."""

    model_config = ConfigDict(extra="forbid")

    checks: list[Literal["reconstruction", "classifier"]] = Field(
        ["reconstruction", "classifier"], description="reconstruction: PCA fitted on the reference, the "
        "reconstruction error per window against a band from the reference's own chunks; classifier: the "
        "cross-validated ROC AUC of a model telling reference rows from current ones. [] turns both off.")
    verdict: bool = Field(True, description="A check that flags the data (or a window) means dataset drift "
                          "there, whatever the share of drifted columns.")
    variance: float = Field(0.65, gt=0, lt=1, description="Share of the reference's variance the PCA keeps.")
    band: float = Field(4.0, gt=0, description="Reconstruction band: the reference chunks' mean ± this many "
                        "standard deviations (NannyML uses 3; 4 keeps same-distribution samples from flagging).")
    auc: float = Field(0.55, gt=0.5, lt=1, description="Domain-classifier ROC AUC above which the data drifted "
                       "(raised for small windows, see the report's threshold per window).")
    sample_rows: int = Field(2000, ge=100, description="Rows per side the domain classifier trains on.")
    model: Literal["gaussian", "gradient_boosting"] = Field(
        "gaussian", description="The domain classifier: gaussian (a mean and covariance per side, numpy; catches "
        "shifted means, spreads and correlations) or gradient_boosting (scikit-learn's HistGradientBoosting: also "
        "non-linear differences, ~1 s more to import).")


class PerformanceSettings(BaseModel):
    """Which columns of data files are the model's score, prediction, label and row id (logs name them)."""

    model_config = ConfigDict(extra="forbid")

    estimate: bool = Field(True, description="Estimate classification metrics without labels (CBPE) when the "
                           "current data holds probabilities and the reference holds labels.")
    score: Optional[str] = Field(None, description="Column with the positive class's probability (logs: "
                                 "outputs.probabilities_1 and the like).")
    prediction: Optional[str] = Field(None, description="Column with the predicted class (0/1); without it, "
                                      "score >= 0.5.")
    label: Optional[str] = Field(None, description="Column with the ground truth (logs: the record's label).")
    id: Optional[str] = Field(None, description="Column that --labels' request_id matches (logs: request_id).")


class DriftSettings(BaseModel):
    """Drift and performance checks on prediction logs."""

    model_config = ConfigDict(extra="forbid")

    reference: Optional[str] = Field(None, description="Training data or a saved profile.")
    drift_share: float = Field(0.5, gt=0, le=1, description="Share of drifted columns that means dataset drift.")
    columns: dict[str, ColumnSettings] = Field(default_factory=dict)
    multivariate: MultivariateSettings = Field(default_factory=MultivariateSettings)
    performance: PerformanceSettings = Field(default_factory=PerformanceSettings)

    def overridden(self, **flags: object) -> "DriftSettings":
        """These settings with the flags that were given (not None) taking precedence."""
        given = {k: v for k, v in flags.items() if v is not None}
        return self.model_validate({**self.model_dump(), **given})


class DriftOptions(DriftSettings):
    """One comparison: the settings plus what to compare and how to read it."""

    reference: str = Field(description="Reference data, logs or a saved profile.")
    current: str = Field(description="Current data or prediction logs (file, directory, glob).")
    window: Optional[str] = Field(None, description="Compare each window: 1h, 1d, 30m or 5000rows.")
    min_rows: int = Field(MIN_ROWS, ge=1, description="Fewer values than this: too small to judge.")
    labels: Optional[Path] = Field(None, description="Ground truth (request_id, label) joined to the logs.")
    model: Optional[Path] = Field(None, description="The ONNX model: scores a reference that lacks the logged "
                                  "outputs, so output drift is judged.")
    features: Optional[DeclaredFeatures] = Field(None, description="Column names of the model's 2-D inputs "
                                                 "(mlship.yaml's features:), to score the reference.")
    strict: bool = Field(False, description="A malformed log line is an error, not skipped.")
    chunk_rows: int = Field(50_000, ge=1, description="Rows read at a time (memory bound).")
