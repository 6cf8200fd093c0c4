"""Comparing two profiles column by column: statistics and verdicts.

Effect sizes decide; p-values (Benjamini-Hochberg adjusted within each family
of tests) only keep small samples from being judged on noise. A column whose
values change type drifts whatever the sample size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.drift import stats
from mlship.drift.profile import ColumnProfile, Profile
from mlship.drift.report import (CategoryShare, ColumnDrift, ColumnStats, ColumnSummary, Histogram, Method,
                                 MissingChange, Thresholds, TopCategories, TypeChange, TypeValues)
from mlship.drift.roles import infer_role
from mlship.drift.settings import MIN_ROWS, ColumnSettings, DriftOptions

# The defaults, documented in the README.
DEFAULTS: dict[str, float] = {
    "p_value": 0.05,
    "wasserstein_norm": 0.1,
    "psi": 0.2,
    "js": 0.1,
    "unseen_share": 0.05,
    "missing_delta": 0.05,
    "min_rows": MIN_ROWS,
}


def thresholds(options: DriftOptions) -> Thresholds:
    """The limits a report was judged with."""
    return Thresholds(**{**DEFAULTS, "drift_share": options.drift_share, "min_rows": options.min_rows})


def compare(reference: Profile, current: Profile, options: DriftOptions) -> list[ColumnDrift]:
    """Per-column statistics and verdicts (BH correction across columns)."""
    results = []
    complements = probability_complements(reference)
    for name in sorted(set(reference.columns) | set(current.columns)):
        rule = options.columns.get(name, ColumnSettings())
        ref, cur = reference.columns.get(name), current.columns.get(name)
        result = ColumnDrift(name=name, role="output" if name.startswith("outputs.") else "feature",
                             drifted=False, reasons=[])
        role = column_role(ref or cur, rule)
        if rule.ignore:
            result = _with(result, ignored=True, kind=ref.kind if ref else None)
        elif role is not None:
            result = _with(result, role=role[0], ignored=True, kind=(ref or cur).kind, note=role[1])
        elif name in complements:
            result = _with(result, ignored=True, kind=ref.kind, note=f"1 - {complements[name]}: a binary "
                           "classifier's two probabilities count once")
        elif ref is None or cur is None:
            result = _with(result, kind=(ref or cur).kind, insufficient=True, reasons=[_one_side(name, ref is None)])
        else:
            result = _with(result, **_column_stats(ref, cur, rule, options))
        results.append(result)
    _judge(results)
    return results


def share_drifted(columns: list[ColumnDrift]) -> tuple[list[str], float, bool]:
    """The drifted columns, their share of the judged ones, and whether any was judged."""
    judged = [c for c in columns if c.judged]
    drifted = [c.name for c in columns if c.drifted]
    return drifted, len(drifted) / len(judged) if judged else 0.0, bool(judged)


def probability_complements(profile: Profile) -> dict[str, str]:
    """`outputs.P_0` -> `outputs.P_1` for each output P holding exactly two values in [0, 1]
    (a binary classifier's probabilities: the first is one minus the second)."""
    pairs = {}
    for name in profile.columns:
        if name.startswith("outputs.") and name.endswith("_1"):
            base = name[:-2]
            first, second = profile.columns.get(base + "_0"), profile.columns[name]
            if first is not None and base + "_2" not in profile.columns and _probability(first) \
                    and _probability(second):
                pairs[base + "_0"] = name
    return pairs


def column_role(column: ColumnProfile, rule: ColumnSettings) -> tuple[str, str] | None:
    """("identifier" or "time", why) for a column left out of drift; None for one judged."""
    if rule.role == "feature" or column.name.startswith("outputs."):
        return None
    if rule.role is not None:
        return rule.role, f"{rule.role}: declared in monitoring.columns"
    present = column.count - column.missing
    return infer_role(column.signals, present, column.numeric.n)


def time_column(profile: Profile, options: DriftOptions) -> str | None:
    """The column whose times drive --window when records have no `ts`: declared, else inferred."""
    declared = [n for n, rule in options.columns.items() if rule.role == "time"]
    inferred = [n for n in sorted(profile.columns)
                if (column_role(profile.columns[n], options.columns.get(n, ColumnSettings())) or ("",))[0] == "time"]
    return next(iter(declared + inferred), None)


def _probability(column: ColumnProfile) -> bool:
    sketch = column.numeric
    return bool(sketch.n) and not column.non_numeric and sketch.min >= 0 and sketch.max <= 1


def _one_side(name: str, only_current: bool) -> str:
    if not only_current:
        return "only in the reference"
    if name.startswith("outputs."):  # training data has no outputs: the model can add them
        return "only in the current data (give the model, --model or model:, to score the reference)"
    return "only in the current data"


def _with(column: ColumnDrift, **fields: Any) -> ColumnDrift:
    """`column` with `fields` set (and counted as set, so they appear in the document)."""
    return ColumnDrift.model_validate({**column.model_dump(exclude_unset=True), **fields})


def _column_stats(ref: ColumnProfile, cur: ColumnProfile, rule: ColumnSettings,
                  options: DriftOptions) -> dict[str, Any]:
    kind = rule.kind or ref.kind
    if kind == "categorical" and not (ref.category_counts() and (cur.category_counts() or not cur.numeric.n)):
        kind = "numeric"
    cur_kind = cur.kind if not (ref.kind == "categorical" and cur.codes is not None) else "categorical"
    change = _type_change(ref, cur, cur_kind)
    out: dict[str, Any] = {
        "kind": kind,
        "type": change,
        "missing": MissingChange(**stats.missing_stats(ref, cur)),
        "reference_summary": _summary(ref, kind),
        "current_summary": _summary(cur, kind),
    }
    valid = cur.count - cur.missing
    if valid < options.min_rows:
        if not change.changed:
            out["insufficient"] = True
            out["reasons"] = [f"{valid} values, fewer than {options.min_rows}"]
        # else: too few values for statistics, but a type change is a fact, judged on its own (in _judge)
        return out
    out["method"] = method(kind, ref, cur, rule)
    if kind == "numeric":
        out["stats"] = ColumnStats(**stats.numeric_stats(ref, cur))  # empty when one side has no numbers
        out["histogram"] = Histogram(**stats.shared_histogram(ref, cur))
    else:
        out["stats"] = ColumnStats(**stats.categorical_stats(ref, cur))
        out["categories"] = _top_categories(ref, cur)
    out["threshold"] = rule.threshold
    return out


def method(kind: str, ref: ColumnProfile, cur: ColumnProfile, rule: ColumnSettings) -> Method:
    """The statistic and threshold a column is judged with, by its type and sample size.

    Every column gets a significance test (Benjamini-Hochberg adjusted) and an effect size: with
    few values the test is what keeps noise from drifting, with many (where any difference is
    significant) the effect size decides. Up to 2000 values a side the statistics are exact (SciPy
    on the values); beyond, they run on the log-bucket sketch (0.2% relative accuracy).
    """
    limit = rule.threshold
    sizes = f"{ref.count - ref.missing:,} vs {cur.count - cur.missing:,} values"
    gate = f"if its test's adjusted p < {DEFAULTS['p_value']:g}"
    if kind == "numeric":
        exact = ref.numeric.exact is not None and cur.numeric.exact is not None
        threshold = limit if limit is not None else DEFAULTS["wasserstein_norm"]
        also = None if limit is not None else f"psi >= {DEFAULTS['psi']:g}"
        psi_rule = f" or PSI >= {DEFAULTS['psi']:g}" if also else ""
        text = (f"numeric, {sizes} ({'exact' if exact else 'sketched'}): KS test; drifts at Wasserstein "
                f">= {threshold:g} std{psi_rule}, {gate}")
        return Method(test="ks", statistic="wasserstein_norm", threshold=threshold, also=also, exact=exact, text=text)
    threshold = limit if limit is not None else DEFAULTS["js"]
    also = f"unseen_share >= {DEFAULTS['unseen_share']:g}"
    text = (f"categorical, {sizes} (exact counts): chi-square test; drifts at Jensen-Shannon >= {threshold:g} "
            f"or >= {DEFAULTS['unseen_share']:.0%} unseen values, {gate}")
    return Method(test="chi2", statistic="js", threshold=threshold, also=also, exact=True, text=text)


def _type_change(ref: ColumnProfile, cur: ColumnProfile, cur_kind: str) -> TypeChange:
    """Whether the column's values changed type: numbers became text, or text appeared or went.

    A type change is a finding (the column drifts), whatever the sample size.
    """
    ref_values = TypeValues(numbers=ref.numeric.n, text=ref.non_numeric)
    cur_values = TypeValues(numbers=cur.numeric.n, text=cur.non_numeric)
    changed = bool(ref_values.numbers + ref_values.text and cur_values.numbers + cur_values.text) and \
        (ref.non_numeric == 0) != (cur.non_numeric == 0)
    new_text = sorted((c for c in cur.categories if c not in ref.categories), key=lambda c: -cur.categories[c])
    return TypeChange(reference=ref.kind, current=cur_kind, changed=changed,
                      reference_values=ref_values, current_values=cur_values,
                      examples=[c[:40] for c in new_text[:3]] if changed and cur.non_numeric else [])


def _type_reason(change: TypeChange) -> str:
    def shape(values: TypeValues) -> str:
        return "numbers and text" if values.numbers and values.text else ("text" if values.text else "numbers")

    cur = change.current_values
    total = cur.numbers + cur.text
    detail = f"{cur.text} of {total} values are text" if cur.text else f"all {total} values are numbers"
    examples = ", ".join(repr(e) for e in change.examples)
    return f"type changed: {shape(change.reference_values)} -> {shape(cur)} " \
           f"({detail}{f', e.g. {examples}' if examples else ''})"


def _judge(results: list[ColumnDrift]) -> None:
    judged = [r for r in results if r.stats is not None and not r.insufficient]
    dist_p = stats.benjamini_hochberg([r.stats.p for r in judged])
    miss_p = stats.benjamini_hochberg([r.missing.p for r in judged])
    for r, p_dist, p_miss in zip(judged, dist_p, miss_p):
        reasons = _effect_reasons(r, significant=p_dist < DEFAULTS["p_value"])
        r.stats.p_adj = p_dist
        r.missing.p_adj = p_miss
        if p_miss < DEFAULTS["p_value"] and abs(r.missing.delta) >= DEFAULTS["missing_delta"]:
            reasons.append(f"missing values {r.missing.reference:.1%} -> {r.missing.current:.1%}")
        r.reasons = reasons
    for r in results:
        if r.type is not None and r.type.changed and r.judged:
            r.reasons = [*r.reasons, _type_reason(r.type)]
        r.drifted = bool(r.reasons) and r.judged


def _effect_reasons(r: ColumnDrift, *, significant: bool) -> list[str]:
    """Sets the column's effect size; the reasons it moved, if it did."""
    s, limit = r.stats, r.threshold
    # Keyed on the statistics present: after a type change one side may have none to compare.
    if s.wasserstein_norm is not None:
        wd_limit = limit if limit is not None else DEFAULTS["wasserstein_norm"]
        r.effect = s.wasserstein_norm
        if significant and s.wasserstein_norm >= wd_limit:
            return [f"distribution moved: Wasserstein {s.wasserstein_norm:.3f} std (>= {wd_limit:g})"]
        if significant and limit is None and s.psi >= DEFAULTS["psi"]:
            return [f"distribution moved: PSI {s.psi:.3f} (>= {DEFAULTS['psi']:g})"]
    elif s.js is not None:
        js_limit = limit if limit is not None else DEFAULTS["js"]
        r.effect = s.js
        if significant and s.js >= js_limit:
            return [f"categories moved: Jensen-Shannon {s.js:.3f} (>= {js_limit:g})"]
        if significant and s.unseen_share >= DEFAULTS["unseen_share"]:
            return [f"new categories: {s.unseen_share:.1%} of values unseen in the reference"]
    return []


QUANTILES = (5, 25, 50, 75, 95)


def _summary(col: ColumnProfile, kind: str) -> ColumnSummary:
    summary: dict[str, Any] = {"count": col.count, "missing": col.missing,
                               "missing_share": col.missing / col.count if col.count else 0.0}
    if col.numeric.n:
        summary.update(mean=col.numeric.mean, std=col.numeric.std, min=col.numeric.min, max=col.numeric.max,
                       quantiles=quantiles(col))
    counts = col.category_counts()
    if kind == "categorical" or col.non_numeric:
        total = sum(counts.values()) or 1
        summary["distinct"] = len(counts)
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:5]
        summary["top"] = [CategoryShare(value=v[:60], share=n / total) for v, n in top]
    return ColumnSummary(**summary)


def quantiles(col: ColumnProfile) -> dict[str, float]:
    """p5 ... p95 of the column's numbers (bucket values when sketched)."""
    values, weights = col.numeric.weighted()
    cumulative = np.cumsum(weights) / weights.sum()
    index = np.minimum(np.searchsorted(cumulative, np.asarray(QUANTILES) / 100, side="left"), len(values) - 1)
    return {f"p{q}": float(values[i]) for q, i in zip(QUANTILES, index)}


def _top_categories(ref: ColumnProfile, cur: ColumnProfile, k: int = 12) -> TopCategories:
    rc, cc = ref.category_counts(), cur.category_counts()
    rt, ct = sum(rc.values()) or 1, sum(cc.values()) or 1
    names = sorted(set(rc) | set(cc), key=lambda c: -(rc.get(c, 0) / rt + cc.get(c, 0) / ct))[:k]
    return TopCategories(names=names, reference=[rc.get(c, 0) / rt for c in names],
                         current=[cc.get(c, 0) / ct for c in names])
