"""How a CheckReport looks in a terminal.

Paths, names and details come from the model and the user's files: they are
printed as Text (never read as markup), so `evil[/x]` is shown as it is.
"""

from __future__ import annotations

from rich.console import Console as RichConsole
from rich.table import Table
from rich.text import Text

from mlship.check import CheckReport
from mlship.console import plain
from mlship.metrics import ClassBreakdown

_MARK = {"pass": ("✓", "green"), "fail": ("✗", "red"), "warn": ("!", "yellow"), "skip": ("-", "dim")}


def render_report(report: CheckReport, out: RichConsole) -> None:
    """Model facts, signature, latency, comparisons, then the verdict."""
    m = report.model
    opsets = ", ".join(f"{d} {v}" for d, v in sorted(m.opsets.items()))
    out.print(Text.assemble((str(m.path), "bold"), f"  {_size(m.size_bytes)}  sha256 {m.sha256}"))
    out.print(f"IR {m.ir_version}, opsets {opsets}; producer {m.producer}; "
              f"onnxruntime {report.runtime.onnxruntime} (max IR {report.runtime.max_ir_version}, "
              f"opsets {', '.join(f'{d} {v}' for d, v in report.runtime.max_opsets.items())})", markup=False)
    out.print(_signature_table(report))
    out.print(_latency_table(report))
    if report.quality:
        q = report.quality
        line = Text(f"Quality ({q.task}, {q.rows} rows, labels {q.labels}): ")
        for i, (k, v) in enumerate(q.metrics.items()):
            line.append_text(Text.assemble(", " if i else "", f"{k} ", (f"{v:.4f}", "bold")))
        out.print(line)
        if q.classes:
            out.print(class_table(q.classes))
            out.print(confusion_table(q.classes))
    if report.baseline:
        b = report.baseline
        diffs = ", ".join(f"{k} {v:.3g}" for k, v in b.max_abs_diff.items()) or "n/a"
        agree = f"{b.label_agreement:.2%}" if b.label_agreement is not None else "n/a"
        out.print(f"Baseline {b.path}: max |diff| {diffs}; label agreement {agree}", markup=False)
        if b.quality:
            changes = ", ".join(f"{k} {b.quality[k]:.4f} -> {b.quality[k] + d:.4f} ({d:+.4f})"
                                for k, d in b.quality_delta.items())
            out.print(f"Baseline quality on the same labels: {changes}", markup=False)
    out.print()
    for item in report.checks:
        out.print(Text.assemble(" ", _MARK[item.status], f" {item.name}: {item.detail}"))
    verdict = "[green bold]PASSED[/green bold]" if report.passed else "[red bold]FAILED[/red bold]"
    out.print(f"\n{verdict}")


def _signature_table(report: CheckReport) -> Table:
    table = Table(title="Signature", title_justify="left", show_edge=False)
    for col in ("", "name", "type", "shape"):
        table.add_column(col)
    for kind, specs in (("input", report.signature.inputs), ("output", report.signature.outputs)):
        for spec in specs:
            table.add_row(kind, plain(spec.name), plain(spec.type), plain(spec.shape_text()))
    sig = report.signature
    if sig.features:
        lines = [f"features{'' if len(sig.features) == 1 else ' of ' + name}: {_preview(names)} "
                 f"(from {sig.feature_source})" for name, names in sig.features.items()]
        table.caption = plain("\n".join(lines))
        table.caption_justify = "left"
    return table


def class_table(classes: ClassBreakdown) -> Table:
    """Per-class precision, recall, F1, one-vs-rest ROC AUC and support."""
    table = Table(title="Per class", title_justify="left", show_edge=False)
    for col in ("class", "precision", "recall", "f1", "roc auc (ovr)", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c in classes.classes:
        auc = f"{c.roc_auc:.4f}" if c.roc_auc is not None else "n/a"
        table.add_row(plain(c.label), f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", auc, str(c.support))
    return table


def confusion_table(classes: ClassBreakdown) -> Table:
    """The confusion matrix: a row per true class, a column per predicted class."""
    labels = classes.confusion.labels
    table = Table(title="Confusion matrix (rows: truth, columns: predicted)", title_justify="left", show_edge=False)
    table.add_column("truth \\ predicted")
    for label in labels:
        table.add_column(plain(label), justify="right")
    for i, (label, row) in enumerate(zip(labels, classes.confusion.counts)):
        table.add_row(plain(label), *(plain(n, "bold" if i == j else "") for j, n in enumerate(row)))
    return table


def _preview(names: list[str]) -> str:
    return ", ".join(names[:4]) + (f", … and {len(names) - 4} more" if len(names) > 4 else "")


def _latency_table(report: CheckReport) -> Table:
    table = Table(title=plain(f"Latency ({report.smoke.source})"), title_justify="left", show_edge=False)
    for col in ("batch", "p50 ms", "p95 ms", "p99 ms", "rows/s", "runs"):
        table.add_column(col, justify="right")
    for s in report.latency:
        table.add_row(str(s.batch_size), f"{s.p50_ms:.3f}", f"{s.p95_ms:.3f}", f"{s.p99_ms:.3f}",
                      f"{s.rows_per_s:,.0f}", str(s.runs))
    return table


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
