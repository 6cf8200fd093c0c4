"""Data quality beside drift: what is wrong with the current data, not only what moved.

Each finding is a violation named as SageMaker Model Monitor names them
(`constraint_violations.json`: feature_name, constraint_check_type,
description), so alerting written for Model Monitor matches mlship's JSON:

- missing_column_check: a reference column absent from the current data;
- extra_column_check: a current column the reference never had (model
  outputs are left out when the reference has none: training data);
- data_type_check: the values changed type (numbers became text or back);
- completeness_check: the share of values present fell by at least
  `missing_delta` (and significantly: two-proportion z-test, p < 0.05);
- baseline_drift_check: the column's distribution drifted;
- categorical_values_check: at least `unseen_share` of the values are
  categories the reference never had.

Two more, mlship's own: value_range_check (a share of numbers outside the
reference's [min, max] above what chance gives a reference of that size) and
constant_column_check (one value throughout, where the reference varied).
Everything is computed from the two profiles, so it costs no second pass.
"""

from __future__ import annotations

from mlship.drift.comparison import DEFAULTS
from mlship.drift.profile import ColumnProfile, Profile
from mlship.drift.report import ColumnDrift, ColumnQuality, QualityReport, Violation
from mlship.drift.stats import comparable_values

CHECKS = ("missing_column_check", "extra_column_check", "data_type_check", "completeness_check",
          "baseline_drift_check", "categorical_values_check", "value_range_check", "constant_column_check")
RANGE_SHARE = 0.01  # at least this share of numbers outside the reference's range ...
RANGE_CHANCE = 4.0  # ... and RANGE_CHANCE times the 2 / (n + 1) a new value of the same distribution has


def assess(reference: Profile, current: Profile, columns: list[ColumnDrift]) -> QualityReport:
    """Quality per column (set on `columns`) and the violations, in the columns' order."""
    violations: list[Violation] = []
    ref_has_outputs = any(n.startswith("outputs.") for n in reference.columns)
    for column in columns:
        ref, cur = reference.columns.get(column.name), current.columns.get(column.name)
        if cur is None:
            violations.append(_violation(column.name, "missing_column_check",
                                         "in the reference, absent from the current data"))
            continue
        if ref is None:
            if ref_has_outputs or not column.name.startswith("outputs."):
                violations.append(_violation(column.name, "extra_column_check",
                                             "in the current data, absent from the reference"))
            continue
        column.quality = column_quality(ref, cur, column.kind)
        violations += _column_violations(column)
    counts = {check: sum(1 for v in violations if v.constraint_check_type == check) for check in CHECKS}
    return QualityReport(
        violations=violations, counts={k: n for k, n in counts.items() if n},
        missing_columns=[v.feature_name for v in violations if v.constraint_check_type == "missing_column_check"],
        extra_columns=[v.feature_name for v in violations if v.constraint_check_type == "extra_column_check"],
        constant_columns=[c.name for c in columns if c.quality and c.quality.constant_current])


def column_quality(ref: ColumnProfile, cur: ColumnProfile, kind: str | None) -> ColumnQuality:
    """Completeness, range and constancy of one column on both sides."""
    out = ColumnQuality(completeness_reference=_complete(ref), completeness_current=_complete(cur),
                        constant_reference=_constant(ref), constant_current=_constant(cur))
    if kind == "numeric" and ref.numeric.n and cur.numeric.n:
        (rv, _), (cv, cw), _ = comparable_values(ref, cur)  # one footing: exact, or both bucketed
        below, above = float(cw[cv < rv[0]].sum()), float(cw[cv > rv[-1]].sum())
        out.below_range, out.above_range = int(below), int(above)
        out.out_of_range_share = (below + above) / cur.numeric.n
        out.range_limit = max(RANGE_SHARE, RANGE_CHANCE * 2 / (ref.numeric.n + 1))
    if kind == "categorical":
        ref_cats, cur_cats = ref.category_counts(), cur.category_counts()
        total = sum(cur_cats.values())
        unseen = sum(n for c, n in cur_cats.items() if c not in ref_cats and c != "(other)")
        out.unseen_share = unseen / total if total else 0.0
    return out


def _column_violations(column: ColumnDrift) -> list[Violation]:
    q, name, found = column.quality, column.name, []
    if column.type is not None and column.type.changed:
        t = column.type
        found.append(_violation(name, "data_type_check", f"{t.reference} -> {t.current}: "
                                f"{t.current_values.text} text and {t.current_values.numbers} numbers now, "
                                f"{t.reference_values.text} text and {t.reference_values.numbers} numbers before"))
    drop = q.completeness_reference - q.completeness_current
    significant = column.missing is None or column.missing.p < DEFAULTS["p_value"]
    if drop >= DEFAULTS["missing_delta"] and significant:
        found.append(_violation(name, "completeness_check", f"completeness {q.completeness_current:.1%}, "
                                f"{q.completeness_reference:.1%} in the reference"))
    if column.drifted and column.judged:
        found.append(_violation(name, "baseline_drift_check", "; ".join(column.reasons)))
    if q.unseen_share is not None and q.unseen_share >= DEFAULTS["unseen_share"]:
        found.append(_violation(name, "categorical_values_check",
                                f"{q.unseen_share:.1%} of the values are categories the reference never had"))
    if q.out_of_range_share is not None and q.out_of_range_share >= q.range_limit:
        found.append(_violation(name, "value_range_check", f"{q.out_of_range_share:.1%} of the values outside "
                                f"the reference's range ({q.below_range} below, {q.above_range} above)"))
    if q.constant_current and not q.constant_reference:
        found.append(_violation(name, "constant_column_check", "one value throughout; the reference varied"))
    return found


def _violation(name: str, check: str, description: str) -> Violation:
    return Violation(feature_name=name, constraint_check_type=check, description=description)


def _complete(col: ColumnProfile) -> float:
    return (col.count - col.missing) / col.count if col.count else 0.0


def _constant(col: ColumnProfile) -> bool:
    """One distinct value among the present ones (at least two present)."""
    if col.count - col.missing < 2:
        return False
    if col.numeric.n and col.non_numeric:
        return False
    if col.numeric.n:
        return col.numeric.min == col.numeric.max
    return len(col.categories) == 1 and not col.other
