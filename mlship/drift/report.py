"""The drift report (schema mlship.drift/v1) as typed values.

`run_drift` returns a `DriftReport`; the terminal, Markdown and HTML renderers
read it, and `DriftReport.document()` is the JSON document written by
`mlship drift --json`. Keys that only some columns or windows have (a column
too small to judge has no statistics) are optional fields: the document holds
the fields that were set, so its shape is what the analysis found, and
`report_schema()` is the JSON Schema published as docs/schemas/drift-v1.json.

Run `python -m mlship.drift.report > docs/schemas/drift-v1.json` after a change.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from mlship.drift.cbpe import EstimatedPerformance
from mlship.drift.multivariate import MultivariateDrift
from mlship.metrics import ClassBreakdown

SCHEMA = "mlship.drift/v1"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Source(_Part):
    """One side of the comparison."""

    source: str = Field(description="The file, directory, glob or saved profile read.")
    rows: int = Field(description="Rows compared (predictions only, for logs).")
    scored_with: Optional[str] = Field(None, description="The model that scored this side's outputs "
                                       "(a reference without the logged outputs).")


class Thresholds(_Part):
    """The limits the verdicts used."""

    p_value: float
    wasserstein_norm: float
    psi: float
    js: float
    unseen_share: float
    missing_delta: float
    min_rows: int
    drift_share: float


class TypeValues(_Part):
    """How many values of a column were numbers and how many text."""

    numbers: int
    text: int


class TypeChange(_Part):
    """Whether a column's values changed type (a finding whatever the sample size)."""

    reference: str
    current: str
    changed: bool
    reference_values: TypeValues
    current_values: TypeValues
    examples: list[str] = Field(description="Up to three new text values, cut to 40 characters.")


class MissingChange(_Part):
    """Missing-value rates and a two-proportion z-test of their difference."""

    reference: float
    current: float
    delta: float
    p: float
    p_adj: Optional[float] = Field(None, description="Benjamini-Hochberg adjusted across columns.")


class CategoryShare(_Part):
    """One category and its share of the side's values."""

    value: str
    share: float


class ColumnSummary(_Part):
    """Counts, moments, quantiles and top categories of one side of a column."""

    count: int
    missing: int
    missing_share: Optional[float] = Field(None, description="missing / count.")
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    quantiles: Optional[dict[str, float]] = Field(
        None, description="p5, p25, p50, p75, p95 (within the sketch's 0.2% relative accuracy).")
    distinct: Optional[int] = None
    top: Optional[list[CategoryShare]] = Field(None, description="The most common categories (up to 5).")


class ColumnStats(_Part):
    """Numeric (KS, Wasserstein, PSI) or categorical (chi-square, Jensen-Shannon) statistics;
    empty when one side has nothing to compare (after a type change)."""

    ks_d: Optional[float] = None
    ks_p: Optional[float] = None
    wasserstein: Optional[float] = None
    wasserstein_norm: Optional[float] = Field(None, description="Wasserstein distance / reference std.")
    psi: Optional[float] = None
    chi2: Optional[float] = None
    chi2_p: Optional[float] = None
    js: Optional[float] = None
    unseen_share: Optional[float] = None
    categories: Optional[int] = None
    p_adj: Optional[float] = Field(None, description="Benjamini-Hochberg adjusted across columns.")

    @property
    def p(self) -> float:
        """The distribution test's p-value (1.0 when there was nothing to test)."""
        return next((p for p in (self.ks_p, self.chi2_p) if p is not None), 1.0)


class Histogram(_Part):
    """Reference and current shares on shared bins (empty when one side has no numbers)."""

    edges: list[float] = []
    reference: list[float] = []
    current: list[float] = []


class TopCategories(_Part):
    """Shares of the most common categories."""

    names: list[str]
    reference: list[float]
    current: list[float]


class Method(_Part):
    """How a column was judged, chosen by its type and sample size."""

    test: str = Field(description="The significance test: ks (numeric) or chi2 (categorical).")
    statistic: str = Field(description="The effect size that decides: wasserstein_norm or js.")
    threshold: float = Field(description="The effect size at or above which the column drifts.")
    also: Optional[str] = Field(None, description="The second rule, when there is one (PSI, unseen share).")
    exact: bool = Field(description="Statistics on the exact values (both sides at most 2000 values), "
                        "else on the log-bucket sketch.")
    text: str = Field(description="The choice in words, as the reports print it.")


class ColumnQuality(_Part):
    """Data quality of a column present on both sides (see mlship/drift/quality.py)."""

    completeness_reference: float = Field(description="Share of values present in the reference.")
    completeness_current: float
    constant_reference: bool = Field(description="One distinct value throughout.")
    constant_current: bool
    below_range: Optional[int] = Field(None, description="Current numbers below the reference's minimum.")
    above_range: Optional[int] = Field(None, description="Current numbers above the reference's maximum.")
    out_of_range_share: Optional[float] = None
    range_limit: Optional[float] = Field(None, description="The out-of-range share that is a violation: 1%, or "
                                         "4 x 2 / (n + 1) for a reference of n numbers, whichever is larger.")
    unseen_share: Optional[float] = Field(None, description="Share of current values in categories the "
                                          "reference never had.")


class ColumnDrift(_Part):
    """One column's comparison and verdict."""

    name: str
    role: Literal["feature", "output", "identifier", "time"] = Field(
        description="identifier and time columns are reported, not judged.")
    drifted: bool
    reasons: list[str]
    ignored: Optional[bool] = None
    note: Optional[str] = Field(None, description="Why the column is left out of the drifted share, when it is.")
    kind: Optional[str] = None
    type: Optional[TypeChange] = None
    missing: Optional[MissingChange] = None
    reference_summary: Optional[ColumnSummary] = None
    current_summary: Optional[ColumnSummary] = None
    insufficient: Optional[bool] = None
    stats: Optional[ColumnStats] = None
    histogram: Optional[Histogram] = None
    categories: Optional[TopCategories] = None
    threshold: Optional[float] = None
    effect: Optional[float] = Field(None, description="The effect size judged (Wasserstein std or JS).")
    method: Optional[Method] = None
    quality: Optional[ColumnQuality] = None

    @property
    def judged(self) -> bool:
        """Counted in the drifted share: neither ignored nor too small to judge."""
        return not self.insufficient and not self.ignored


class Latency(_Part):
    p50: float
    p95: float
    p99: float


class OperationsSummary(_Part):
    """Request counts, error rate and latency percentiles."""

    requests: int
    error_rate: float
    latency_ms: Optional[Latency] = None


class _Variant(_Part):
    version: str
    variant: str


class VariantOperations(OperationsSummary, _Variant):
    """Operations of one (version, variant) pair of the logs."""


class PerformanceSummary(_Part):
    """Quality against labels: classification or regression metrics."""

    task: Literal["classification", "regression"]
    rows: int
    accuracy: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None
    f1: Optional[float] = None
    roc_auc: Optional[float] = None
    mae: Optional[float] = None
    rmse: Optional[float] = None
    classes: Optional[ClassBreakdown] = Field(None, description="More than two labels (reference and current, not "
                                              "windows): per-class precision, recall, F1, support and one-vs-rest "
                                              "ROC AUC (roc_auc is their macro mean), and the confusion matrix.")

    def metrics(self, names: tuple[str, ...]) -> dict[str, float]:
        """The metrics among `names` that this task has, in that order."""
        values = {n: getattr(self, n) for n in names}
        return {n: v for n, v in values.items() if v is not None}


class WindowDrift(_Part):
    """One window of current data: its rows, verdict, quality and operations."""

    rows: int
    performance: Optional[PerformanceSummary]
    operations: OperationsSummary
    start_row: Optional[int] = None
    end_row: Optional[int] = None
    start: Optional[str] = None
    end: Optional[str] = None
    label: str
    insufficient: bool
    dataset_drift: Optional[bool]
    drifted_share: Optional[float]
    drifted_columns: list[str]
    effects: Optional[dict[str, float]] = None
    multivariate: Optional[list[str]] = Field(None, description="The multivariate checks that flagged the window.")


class PerformanceReport(_Part):
    reference: Optional[PerformanceSummary]
    current: Optional[PerformanceSummary]


class OperationsReport(_Part):
    overall: OperationsSummary
    by_version_variant: list[VariantOperations]


class ReadSummary(_Part):
    """What reading skipped."""

    bad_lines: int
    examples: list[str]
    files: int


class Violation(_Part):
    """One data-quality finding, in SageMaker Model Monitor's constraint_violations.json shape."""

    feature_name: str
    constraint_check_type: Literal["missing_column_check", "extra_column_check", "data_type_check",
                                   "completeness_check", "baseline_drift_check", "categorical_values_check",
                                   "value_range_check", "constant_column_check"]
    description: str


class QualityReport(_Part):
    """Data quality of the current data against the reference."""

    violations: list[Violation]
    counts: dict[str, int] = Field(description="Violations per check (checks without any are left out).")
    missing_columns: list[str]
    extra_columns: list[str]
    constant_columns: list[str]


class Verdict(_Part):
    """The headline: about the windows when there are windows, else about the whole current data."""

    scope: Literal["dataset", "windows"]
    drift: bool = Field(description="What the headline says, and what --fail-on's default follows.")
    text: str
    windows: Optional[int] = None
    drifted_windows: Optional[int] = None
    since: Optional[str] = Field(None, description="Start of the latest run of drifted windows, when the "
                                 "newest judged window drifted.")
    judged: Optional[bool] = Field(None, description="false when nothing could be judged: every window "
                                   "(or, without windows, every column) too small or ignored; absent otherwise.")


class DriftReport(_Part):
    """The result of `mlship drift` (schema mlship.drift/v1)."""

    model_config = ConfigDict(extra="forbid", title="mlship.drift/v1")

    schema_: Literal["mlship.drift/v1"] = Field(SCHEMA, alias="schema")
    verdict: Verdict
    reference: Source
    current: Source
    thresholds: Thresholds
    dataset_drift: bool
    drifted_share: float
    drifted_columns: list[str]
    columns: list[ColumnDrift]
    windows: list[WindowDrift]
    quality: QualityReport
    performance: PerformanceReport
    operations: OperationsReport
    read: ReadSummary
    multivariate: Optional[MultivariateDrift] = Field(None, description="Checks of the features together.")
    estimated_performance: Optional[EstimatedPerformance] = Field(
        None, description="Classification metrics estimated without labels (CBPE), per window.")

    def document(self) -> dict[str, Any]:
        """The JSON document: every field the analysis set, optional ones only where found."""
        return {"schema": SCHEMA, **self.model_dump(by_alias=True, exclude_unset=True)}

    def summary(self) -> dict[str, Any]:
        """What a webhook receives: the verdict without per-column detail."""
        doc = self.document()
        keys = ("schema", "verdict", "reference", "current", "dataset_drift", "drifted_share", "drifted_columns", "thresholds")
        return {**{k: doc[k] for k in keys},
                "windows_with_drift": [w.label for w in self.windows if w.dataset_drift],
                "violations": doc["quality"]["counts"],
                "performance": doc["performance"]["current"]}


def report_schema() -> dict[str, Any]:
    """The JSON Schema of the report document (docs/schemas/drift-v1.json)."""
    schema = DriftReport.model_json_schema(by_alias=True, mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA, **schema}


def schema_text() -> str:
    """report_schema() as the checked-in file holds it."""
    return json.dumps(report_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
