"""Drift reports for people: terminal and Markdown."""

from __future__ import annotations

from typing import Any

from mlship.console import visible
from mlship.drift.report import ColumnDrift, DriftReport
from mlship.drift.verdict import dataset_text
from mlship.drift.together_view import markdown_lines, terminal_lines

# The metrics each report shows, in this order (those the task has).
TERMINAL_METRICS = ("accuracy", "f1", "roc_auc", "mae", "rmse")
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")


def verdict(report: DriftReport) -> str:
    """The one-line verdict every report leads with (about the windows, when there are any)."""
    return report.verdict.text


def overall(report: DriftReport) -> str:
    """The verdict over the whole current data (a second line under a windows headline)."""
    judged = sum(1 for c in report.columns if c.judged)
    flagged = report.multivariate.flagged_by if report.multivariate and report.multivariate.verdict else []
    return dataset_text(report.dataset_drift, len(report.drifted_columns), judged, report.drifted_share,
                        report.thresholds.drift_share, flagged)


def effect_text(column: ColumnDrift) -> str:
    """The column's effect sizes, in a few characters."""
    s = column.stats
    if s is not None and s.wasserstein_norm is not None:
        return f"WD {s.wasserstein_norm:.3f}σ, KS {s.ks_d:.3f}, PSI {s.psi:.3f}"
    if s is not None and s.js is not None:
        return f"JS {s.js:.3f}, χ² {s.chi2:.1f}, unseen {s.unseen_share:.1%}"
    return ""


def rule_text(column: ColumnDrift) -> str:
    """The test and threshold the column was judged with, in a few characters."""
    m = column.method
    if m is None:
        return ""
    if m.statistic == "wasserstein_norm":
        rule = f"KS: WD ≥ {m.threshold:g}σ" + (f" or PSI ≥ {m.also.split()[-1]}" if m.also else "")
    else:
        rule = f"χ²: JS ≥ {m.threshold:g} or unseen ≥ {float(m.also.split()[-1]):.0%}" if m.also else \
            f"χ²: JS ≥ {m.threshold:g}"
    return f"{rule} ({'exact' if m.exact else 'sketched'})"


def methods_text(report: DriftReport) -> str:
    """How the judged columns were judged, in one line (what the terminal prints under the table)."""
    groups: dict[str, int] = {}
    for c in report.columns:
        if c.method is not None and c.judged:
            groups[rule_text(c)] = groups.get(rule_text(c), 0) + 1
    if not groups:
        return ""
    return "judged by: " + "; ".join(f"{rule} for {n} column{'s' if n > 1 else ''}" for rule, n in groups.items()) \
        + f"; each only when its adjusted p < {report.thresholds.p_value:g}"


def state(column: ColumnDrift) -> str:
    """n/a (ignored or too small to judge), drift or ok."""
    return "n/a" if not column.judged else ("drift" if column.drifted else "ok")


def quality_text(report: DriftReport) -> str:
    """The violations per check, in one line."""
    counts = report.quality.counts
    total = sum(counts.values())
    if not total:
        return "no violations"
    return f"{total} violation{'s' if total > 1 else ''} (" + ", ".join(f"{k} {n}" for k, n in counts.items()) + ")"


def missing_text(column: ColumnDrift) -> str:
    miss = column.missing
    return f"{miss.reference:.1%} → {miss.current:.1%}" if miss else ""


def render_terminal(report: DriftReport, out: Any) -> None:
    """The report for a person at a terminal (`out` is a rich console)."""
    from rich.table import Table
    from rich.text import Text

    from mlship.console import plain

    # Sources, column names and reasons come from files: Text, never markup.
    out.print(f"reference {report.reference.source} ({report.reference.rows:,} rows) vs "
              f"current {report.current.source} ({report.current.rows:,} rows)", markup=False)
    table = Table(show_edge=False)
    for name in ("column", "kind", "drift", "effect size", "missing", "p (BH)", "why"):
        table.add_column(name)
    marks = {"n/a": "[dim]n/a[/dim]", "drift": "[red]DRIFT[/red]", "ok": "[green]ok[/green]"}
    for c in report.columns:
        p_adj = c.stats.p_adj if c.stats else None
        table.add_row(plain(c.name), plain(c.kind or ""), marks[state(c)], effect_text(c), missing_text(c),
                      f"{p_adj:.2g}" if p_adj is not None else "", plain("; ".join(c.reasons)))
    out.print(table)
    if methods_text(report):
        out.print(methods_text(report), markup=False)
    for c in report.columns:  # the table wraps narrow cells; a type change is worth a whole line
        for reason in c.reasons:
            if reason.startswith("type changed"):
                out.print(Text.assemble((c.name, "bold"), ": ", (reason, "red")))
    windows = report.windows
    if windows:
        drifted = [w for w in windows if w.dataset_drift]
        small = [w for w in windows if w.insufficient]
        out.print(f"windows: {len(windows)}, with dataset drift: {len(drifted)}"
                  + (f" (first: {drifted[0].label})" if drifted else "")
                  + (f", too small to judge: {len(small)}" if small else ""), markup=False)
    if report.quality.violations:
        out.print(f"data quality: {quality_text(report)}", markup=False)
        for v in report.quality.violations[:10]:
            out.print(Text.assemble(("  " + v.constraint_check_type, "yellow"), f" {v.feature_name}: {v.description}"))
        if len(report.quality.violations) > 10:
            out.print(f"  … and {len(report.quality.violations) - 10} more in the JSON report", markup=False)
    perf = report.performance.current
    if perf:
        metrics = perf.metrics(TERMINAL_METRICS)
        out.print("performance: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                  + f" on {perf.rows:,} labelled rows")
        if perf.classes:
            out.print("  per class (F1): " + ", ".join(f"{c.label} {c.f1:.4f}" for c in perf.classes.classes),
                      markup=False)
    ops = report.operations.overall
    if ops.latency_ms is not None:
        lat = ops.latency_ms
        out.print(f"operations: {ops.requests:,} requests, error rate {ops.error_rate:.2%}, latency p50 "
                  f"{lat.p50:.2f} / p95 {lat.p95:.2f} / p99 {lat.p99:.2f} ms")
    for line in terminal_lines(report):
        out.print(line, markup=False)
    if report.read.bad_lines:
        out.print(Text.assemble((f"skipped {report.read.bad_lines} malformed lines", "yellow"),
                                ", e.g. " + report.read.examples[0]))
    if report.verdict.scope == "windows":
        out.print(f"all windows together: {overall(report)}", markup=False)
    out.print(Text(verdict(report), style="bold red" if report.verdict.drift else "bold green"))


def render_markdown(report: DriftReport) -> str:
    """A summary for CI job pages (GitHub step summary, GitLab)."""
    lines = [f"## Drift report: {'⚠️ ' if report.verdict.drift else '✅ '}{verdict(report)}", "",
             f"Reference `{report.reference.source}` ({report.reference.rows:,} rows), "
             f"current `{report.current.source}` ({report.current.rows:,} rows).", "",
             "| column | kind | drift | effect size | judged by | missing | why |", "|---|---|---|---|---|---|---|"]
    for c in report.columns:
        mark = {"drift": "**drift**"}.get(state(c), state(c))
        lines.append(f"| `{_cell(c.name)}` | {c.kind or ''} | {mark} | {effect_text(c)} | {rule_text(c)} | "
                     f"{missing_text(c)} | {_cell('; '.join(c.reasons))} |")
    if report.windows:
        lines += ["", "| window | rows | drifted share | drifted columns |", "|---|---|---|---|"]
        for w in report.windows:
            share = "too small" if w.insufficient else f"{w.drifted_share:.0%}"
            lines.append(f"| {w.label} | {w.rows:,} | {share} | {_cell(', '.join(w.drifted_columns))} |")
    if report.quality.violations:
        lines += ["", f"**Data quality:** {quality_text(report)}", "", "| check | column | finding |", "|---|---|---|"]
        lines += [f"| {v.constraint_check_type} | `{_cell(v.feature_name)}` | {_cell(v.description)} |"
                  for v in report.quality.violations]
    perf = report.performance.current
    if perf:
        lines += ["", "**Performance:** " + ", ".join(f"{k} {v:.4f}" for k, v in perf.metrics(METRICS).items())]
        if perf.classes:
            lines += ["", "| class | precision | recall | F1 | ROC AUC | support |", "|---|---|---|---|---|---|"]
            lines += [f"| `{_cell(c.label)}` | {c.precision:.4f} | {c.recall:.4f} | {c.f1:.4f} | "
                      f"{'' if c.roc_auc is None else f'{c.roc_auc:.4f}'} | {c.support:,} |" for c in perf.classes.classes]
    lines += markdown_lines(report)
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text from data (names, values in reasons) inside one Markdown table cell."""
    return " ".join(visible(text).replace("|", "\\|").split())  # GFM reads \| as a pipe, even in code spans
