"""The HTML drift report: one self-contained file (inline CSS and SVG, no
scripts, nothing fetched when it is viewed)."""

from __future__ import annotations

from html import escape
from mlship.console import visible
from mlship.drift.render import METRICS, effect_text, missing_text, overall, quality_text, rule_text, state, verdict
from mlship.drift.report import ColumnDrift, ColumnSummary, DriftReport
from mlship.drift.together_view import html_sections
from mlship.metrics import ClassBreakdown

REF, CUR = "#4c78a8", "#f58518"
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.verdict{padding:10px 14px;border-radius:6px;font-weight:600;margin:12px 0}
.drift{background:#fde8e8;color:#9b1c1c}.ok{background:#e6f4ea;color:#1e6b34}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;
vertical-align:top}th{background:#fafafa}td.num{font-variant-numeric:tabular-nums}
.tag{padding:1px 6px;border-radius:4px;font-size:12px}.tag.drift{background:#e45756;color:#fff}
.tag.ok{background:#54a24b;color:#fff}.tag.na{background:#bbb;color:#fff}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:16px}
figure{margin:0;border:1px solid #eee;border-radius:6px;padding:8px}figcaption{font-size:13px;margin-bottom:4px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
.muted{color:#777}
details{border-top:1px solid #eee;padding:6px 0}summary{cursor:pointer}
table.side{width:auto;margin:6px 0 6px 18px}table.side td,table.side th{padding:2px 10px}
"""


def render_html(report: DriftReport) -> str:
    """The whole report as one HTML page."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
             f"<title>mlship drift report</title><style>{CSS}</style></head><body>",
             "<h1>Drift report</h1>",
             f"<div class='muted'>reference {escape(report.reference.source)} "
             f"({report.reference.rows:,} rows) · current {escape(report.current.source)} "
             f"({report.current.rows:,} rows)</div>",
             f"<div class='verdict {'drift' if report.verdict.drift else 'ok'}'>{escape(verdict(report))}</div>",
             (f"<div class='muted'>all windows together: {escape(overall(report))}</div>"
              if report.verdict.scope == "windows" else ""),
             _table(report), _quality(report), _histograms(report), _windows(report), html_sections(report), _performance(report), _operations(report),
             _details(report),
             "<p class='muted'>Made by mlship. Thresholds: "
             + escape(", ".join(f"{k} {v:g}" for k, v in report.thresholds.model_dump().items()))
             + "</p></body></html>"]
    return visible("".join(parts))  # control characters from the data (names, categories) shown as \xNN


def _table(report: DriftReport) -> str:
    rows = []
    for c in report.columns:
        mark = state(c)
        tag = f"<span class='tag {mark.replace('/', '')}'>{mark}</span>"
        rows.append(f"<tr><td><a href='#col-{_anchor(c.name)}'>{escape(c.name)}</a></td><td>{escape(c.kind or '')}</td><td>{tag}</td>"
                    f"<td class='num'>{escape(effect_text(c))}</td><td>{escape(rule_text(c))}</td>"
                    f"<td class='num'>{missing_text(c)}</td><td>{escape('; '.join(c.reasons))}</td></tr>")
    return ("<h2>Columns</h2><table><thead><tr><th>column</th><th>kind</th><th>drift</th><th>effect size</th>"
            "<th>judged by</th><th>missing</th><th>why</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _quality(report: DriftReport) -> str:
    """The data-quality violations (SageMaker Model Monitor's check names)."""
    found = report.quality.violations
    if not found:
        return "<h2>Data quality</h2><p class='muted'>no violations</p>"
    rows = "".join(f"<tr><td>{escape(v.constraint_check_type)}</td><td><a href='#col-{_anchor(v.feature_name)}'>"
                   f"{escape(v.feature_name)}</a></td><td>{escape(v.description)}</td></tr>" for v in found)
    return (f"<h2>Data quality</h2><p>{escape(quality_text(report))}</p><table><thead><tr><th>check</th>"
            f"<th>column</th><th>finding</th></tr></thead><tbody>{rows}</tbody></table>")


def _details(report: DriftReport) -> str:
    """Per column: both sides' summaries, how it was judged, and why."""
    items = []
    for c in report.columns:
        mark = state(c)
        head = (f"<summary id='col-{_anchor(c.name)}'><b>{escape(c.name)}</b> <span class='tag "
                f"{mark.replace('/', '')}'>{mark}</span> <span class='muted'>{escape(c.kind or '')} · "
                f"{escape(c.role)}</span></summary>")
        body = []
        if c.method:
            body.append(f"<div>judged by: {escape(c.method.text)}</div>")
        if c.note:
            body.append(f"<div class='muted'>{escape(c.note)}</div>")
        if c.reasons:
            body.append(f"<div>why: {escape('; '.join(c.reasons))}</div>")
        if c.quality:
            body.append(f"<div>{escape(_quality_line(c))}</div>")
        if c.reference_summary or c.current_summary:
            body.append(_side_by_side(c.reference_summary, c.current_summary))
        items.append(f"<details{' open' if c.drifted else ''}>{head}{''.join(body)}</details>")
    return "<h2>Column details</h2>" + "".join(items)


def _quality_line(c: ColumnDrift) -> str:
    q = c.quality
    parts = [f"complete {q.completeness_reference:.1%} → {q.completeness_current:.1%}"]
    if q.out_of_range_share is not None:
        parts.append(f"outside the reference's range {q.out_of_range_share:.2%} ({q.below_range} below, "
                     f"{q.above_range} above)")
    if q.unseen_share is not None:
        parts.append(f"unseen categories {q.unseen_share:.1%}")
    if q.constant_reference or q.constant_current:
        parts.append(f"constant: reference {'yes' if q.constant_reference else 'no'}, current "
                     f"{'yes' if q.constant_current else 'no'}")
    return "quality: " + "; ".join(parts)


def _side_by_side(ref: ColumnSummary | None, cur: ColumnSummary | None) -> str:
    """The two sides' summaries as one small table."""
    def cells(s: ColumnSummary | None) -> dict[str, str]:
        if s is None:
            return {}
        out = {"rows": f"{s.count:,}", "missing": f"{s.missing:,} ({(s.missing_share or 0):.1%})"}
        for key in ("mean", "std", "min"):
            if getattr(s, key) is not None:
                out[key] = f"{getattr(s, key):.4g}"
        out.update({k: f"{v:.4g}" for k, v in (s.quantiles or {}).items()})
        if s.max is not None:
            out["max"] = f"{s.max:.4g}"
        if s.distinct is not None:
            out["distinct"] = f"{s.distinct:,}"
        if s.top:
            out["top"] = ", ".join(f"{t.value} {t.share:.0%}" for t in s.top)
        return out

    left, right = cells(ref), cells(cur)
    rows = "".join(f"<tr><th>{k}</th><td class='num'>{escape(left.get(k, ''))}</td>"
                   f"<td class='num'>{escape(right.get(k, ''))}</td></tr>" for k in dict.fromkeys([*left, *right]))
    return f"<table class='side'><tr><th></th><th>reference</th><th>current</th></tr>{rows}</table>"


def _anchor(name: str) -> str:
    """An id for a column name (any text): its hex, so every name is a valid, distinct id."""
    return name.encode().hex()[:120]


def _legend(*items: tuple[str, str]) -> str:
    return "<div class='legend'>" + "".join(f"<span style='background:{c}'></span>{escape(n)}" for n, c in items) + "</div>"


def _histograms(report: DriftReport) -> str:
    figures = []
    for c in report.columns:
        if c.histogram and c.histogram.edges:
            h = c.histogram
            labels = [f"{e:.3g}" for e in h.edges[:-1]]
            figures.append(_figure(c, bars(labels, h.reference, h.current, x_title=c.name)))
        elif c.categories:
            cats = c.categories
            figures.append(_figure(c, bars(cats.names, cats.reference, cats.current, categorical=True,
                                           x_title=c.name)))
    if not figures:
        return ""
    return ("<h2>Distributions</h2>" + _legend(("reference", REF), ("current", CUR))
            + "<div class='grid'>" + "".join(figures) + "</div>")


def _figure(column: ColumnDrift, svg: str) -> str:
    mark = "drift" if column.drifted else "ok"
    return (f"<figure class='chart' data-column='{escape(column.name)}'><figcaption><b>{escape(column.name)}</b> "
            f"<span class='tag {mark}'>{mark}</span> <span class='muted'>{escape(effect_text(column))}</span>"
            f"</figcaption>{svg}</figure>")


def _windows(report: DriftReport) -> str:
    windows = report.windows
    if not windows:
        return ""
    labels = [w.label for w in windows]
    share = [w.drifted_share for w in windows]
    effects: dict[str, list[float | None]] = {}
    for i, w in enumerate(windows):
        for name, value in (w.effects or {}).items():
            effects.setdefault(name, [None] * len(windows))[i] = value
    top = sorted(effects, key=lambda n: -max(v or 0 for v in effects[n]))[:len(PALETTE)]
    small = sum(1 for w in windows if w.insufficient)
    note = f"<p class='muted'>{small} windows were too small to judge (gaps in the lines).</p>" if small else ""
    return ("<h2>Over time</h2><div class='grid'>"
            f"<figure class='chart'><figcaption>Share of drifted columns per window</figcaption>"
            f"{lines(labels, {'drifted share': share}, y_max=1.0, threshold=report.thresholds.drift_share)}</figure>"
            f"<figure class='chart'><figcaption>Effect size per column (Wasserstein σ or JS)</figcaption>"
            f"{lines(labels, {n: effects[n] for n in top})}"
            + _legend(*((n, PALETTE[i]) for i, n in enumerate(top))) + "</figure></div>" + note)


def _performance(report: DriftReport) -> str:
    current = report.performance.current
    if not current:
        return ""
    metrics = current.metrics(METRICS)
    keys = list(metrics)
    reference = report.performance.reference.metrics(METRICS) if report.performance.reference else {}
    rows = "".join(f"<tr><td>{k}</td><td class='num'>{reference.get(k, float('nan')):.4f}</td>"
                   f"<td class='num'>{metrics[k]:.4f}</td></tr>" for k in keys)
    html = ("<h2>Performance</h2><table><thead><tr><th>metric</th><th>reference</th><th>current</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")
    windows = [w for w in report.windows if w.performance]
    if windows:
        series = {k: [getattr(w.performance, k) for w in windows] for k in keys}
        html += ("<div class='grid'><figure class='chart'><figcaption>Per window</figcaption>"
                 f"{lines([w.label for w in windows], series)}"
                 + _legend(*((k, PALETTE[i % len(PALETTE)]) for i, k in enumerate(keys))) + "</figure></div>")
    return html + _classes(report)


def _classes(report: DriftReport) -> str:
    """A multiclass model: per-class metrics of both sides, and each side's confusion matrix."""
    sides = [(name, perf.classes) for name, perf in (("reference", report.performance.reference),
                                                      ("current", report.performance.current))
             if perf is not None and perf.classes is not None]
    if not sides:
        return ""
    cells = {name: {c.label: c for c in classes.classes} for name, classes in sides}
    labels = list(dict.fromkeys(c.label for _, classes in sides for c in classes.classes))
    head = "".join(f"<th>{m} ({name})</th>" for name, _ in sides for m in ("precision", "recall", "F1", "ROC AUC"))
    rows = []
    for label in labels:
        values = []
        for name, _ in sides:
            c = cells[name].get(label)
            values += [None, None, None, None] if c is None else [c.precision, c.recall, c.f1, c.roc_auc]
        rows.append(f"<tr><td>{_shown(label)}</td>" + "".join(
            f"<td class='num'>{'' if v is None else f'{v:.4f}'}</td>" for v in values) + "</tr>")
    figures = "".join(f"<figure class='chart confusion' data-side='{name}'><figcaption>Confusion matrix, {name} "
                      f"<span class='muted'>(rows: truth, columns: predicted; shade: share of the row)</span>"
                      f"</figcaption>{confusion(classes)}</figure>" for name, classes in sides)
    return ("<h2>Per class</h2><table class='classes'><thead><tr><th>class</th>" + head + "</tr></thead><tbody>"
            + "".join(rows) + f"</tbody></table><div class='grid'>{figures}</div>")


def _operations(report: DriftReport) -> str:
    ops = report.operations
    groups = ops.by_version_variant
    if not groups and ops.overall.latency_ms is None:
        return ""
    rows = "".join(
        f"<tr><td>{escape(g.version)}</td><td>{escape(g.variant)}</td><td class='num'>{g.requests:,}</td>"
        f"<td class='num'>{g.error_rate:.2%}</td><td class='num'>"
        + (" / ".join(f"{getattr(g.latency_ms, p):.2f}" for p in ("p50", "p95", "p99")) if g.latency_ms else "")
        + "</td></tr>" for g in groups)
    html = ("<h2>Operations</h2><table><thead><tr><th>version</th><th>variant</th><th>requests</th><th>errors</th>"
            f"<th>latency p50 / p95 / p99 ms</th></tr></thead><tbody>{rows}</tbody></table>")
    windows = [w for w in report.windows if w.operations.latency_ms is not None]
    if windows:
        series = {p: [getattr(w.operations.latency_ms, p) for w in windows] for p in ("p50", "p95", "p99")}
        html += ("<div class='grid'><figure class='chart'><figcaption>Latency per window (ms)</figcaption>"
                 f"{lines([w.label for w in windows], series)}"
                 + _legend(*((p, PALETTE[i]) for i, p in enumerate(series))) + "</figure></div>")
    return html


# -- SVG charts ---------------------------------------------------------------------

W, H, PAD = 360, 170, 28
CAT_SPACE = 40  # room under categorical bars for their rotated names


def bars(labels: list[str], reference: list[float], current: list[float], *, categorical: bool = False,
         x_title: str = "") -> str:
    """Side-by-side bars of reference and current shares; categorical bars each carry their
    category's name under the axis (cut to 12 characters; the tooltip has it whole)."""
    n = max(len(labels), 1)
    top = max(max(reference, default=0), max(current, default=0)) or 1.0
    step = (W - 2 * PAD) / n
    width = max(step / 2 - 1, 1)
    out = [_svg_open(H + CAT_SPACE if categorical else H)]
    for i, (r, c) in enumerate(zip(reference, current)):
        x = PAD + i * step
        for j, (value, color) in enumerate(((r, REF), (c, CUR))):
            h = (H - 2 * PAD) * value / top
            out.append(f"<rect x='{x + j * width:.1f}' y='{H - PAD - h:.1f}' width='{width:.1f}' height='{h:.1f}' "
                       f"fill='{color}'><title>{escape(labels[i])}: {value:.1%}</title></rect>")
    if categorical:
        for i, label in enumerate(labels):
            x = PAD + i * step + width
            short = label if len(label) <= 12 else label[:11] + "…"
            out.append(f"<text class='cat' x='{x:.1f}' y='{H - PAD + 10}' font-size='9' fill='#555' "
                       f"text-anchor='end' transform='rotate(-35 {x:.1f} {H - PAD + 10})'>{escape(short)}</text>")
        out.append(_axes([], top, percent=True, x_title=x_title, title_y=H + CAT_SPACE - 2))
    else:
        out.append(_axes(labels, top, percent=True, x_title=x_title))
    out.append("</svg>")
    return "".join(out)


def confusion(classes: ClassBreakdown) -> str:
    """The confusion matrix as a grid: a row per true class, a column per predicted class, each
    cell shaded by its share of the row (the recall on the diagonal) and labelled with its count."""
    labels, counts = classes.confusion.labels, classes.confusion.counts
    k = max(len(labels), 1)
    left, top = 64, 40
    size = (W - left - 8) / k
    height = int(top + size * k + 8)
    out = [_svg_open(height),
           f"<text x='{left + size * k / 2:.0f}' y='12' font-size='10' fill='#555' text-anchor='middle'>predicted</text>",
           f"<text x='10' y='{top + size * k / 2:.0f}' font-size='10' fill='#555' text-anchor='middle' "
           f"transform='rotate(-90 10 {top + size * k / 2:.0f})'>truth</text>"]
    for j, label in enumerate(labels):
        short = _shown(label if len(label) <= 8 else label[:7] + "…")
        out.append(f"<text class='class' x='{left + (j + 0.5) * size:.1f}' y='{top - 6}' font-size='10' fill='#555' "
                   f"text-anchor='middle'>{short}<title>{_shown(label)}</title></text>")
        out.append(f"<text class='class' x='{left - 4}' y='{top + (j + 0.5) * size + 3:.1f}' font-size='10' "
                   f"fill='#555' text-anchor='end'>{short}<title>{_shown(label)}</title></text>")
    font = max(7, min(12, size / 3))
    for i, row in enumerate(counts):
        total = sum(row) or 1
        for j, n in enumerate(row):
            share = n / total
            x, y = left + j * size, top + i * size
            color = REF if i == j else "#e45756"
            out.append(f"<rect class='cell' x='{x:.1f}' y='{y:.1f}' width='{size - 1:.1f}' height='{size - 1:.1f}' "
                       f"fill='{color}' fill-opacity='{0.08 + 0.92 * share:.3f}'><title>truth {_shown(labels[i])}, "
                       f"predicted {_shown(labels[j])}: {n:,} ({share:.1%} of the row)</title></rect>")
            if n:
                ink = "#fff" if share > 0.5 else "#222"
                out.append(f"<text x='{x + size / 2:.1f}' y='{y + size / 2 + font / 3:.1f}' font-size='{font:.0f}' "
                           f"fill='{ink}' text-anchor='middle'>{n:,}</text>")
    out.append("</svg>")
    return "".join(out)


def _shown(text: str) -> str:
    """A class label from the user's data as HTML text: escaped, control characters shown as \\xNN."""
    return escape(visible(text))


def lines(labels: list[str], series: dict[str, list[float | None]], *, y_max: float | None = None,
          threshold: float | None = None) -> str:
    """One line per series over the windows; None leaves a gap."""
    values = [v for s in series.values() for v in s if v is not None]
    top = y_max or (max(values, default=1.0) * 1.1) or 1.0
    n = max(len(labels) - 1, 1)
    out = [_svg_open()]
    if threshold is not None:
        y = H - PAD - (H - 2 * PAD) * threshold / top
        out.append(f"<line x1='{PAD}' x2='{W - PAD}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e45756' stroke-dasharray='4 3'/>")
    for k, (name, points) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        segment: list[str] = []
        for i, v in enumerate(points + [None]):
            if v is None:
                if segment:
                    out.append(f"<polyline fill='none' stroke='{color}' stroke-width='2' points='{' '.join(segment)}'>"
                               f"<title>{escape(name)}</title></polyline>")
                segment = []
                continue
            x = PAD + (W - 2 * PAD) * i / n
            y = H - PAD - (H - 2 * PAD) * v / top
            segment.append(f"{x:.1f},{y:.1f}")
            out.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2.5' fill='{color}'><title>{escape(name)} "
                       f"{escape(labels[i])}: {v:.3g}</title></circle>")
    out.append(_axes(labels, top, percent=False))
    out.append("</svg>")
    return "".join(out)


def _svg_open(height: int = H) -> str:
    return f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {W} {height}' width='100%' role='img'>"


def _axes(labels: list[str], top: float, *, percent: bool, x_title: str = "", title_y: int = H - 1) -> str:
    axis = (f"<line x1='{PAD}' y1='{H - PAD}' x2='{W - PAD}' y2='{H - PAD}' stroke='#999'/>"
            f"<line x1='{PAD}' y1='{PAD}' x2='{PAD}' y2='{H - PAD}' stroke='#999'/>")
    top_label = f"{top:.0%}" if percent else f"{top:.3g}"
    axis += f"<text x='2' y='{PAD + 4}' font-size='10' fill='#555'>{top_label}</text>"
    if labels:
        axis += (f"<text x='{PAD}' y='{H - 8}' font-size='10' fill='#555'>{escape(labels[0])}</text>"
                 f"<text x='{W - PAD}' y='{H - 8}' font-size='10' fill='#555' text-anchor='end'>{escape(labels[-1])}</text>")
    if percent:  # a distribution: shares of values over the column's values or categories
        axis += (f"<text x='4' y='{H / 2:.0f}' font-size='10' fill='#555' transform='rotate(-90 8 {H / 2:.0f})' "
                 f"text-anchor='middle'>share</text>")
        if x_title:
            axis += (f"<text class='axis-title' x='{W / 2:.0f}' y='{title_y}' font-size='10' fill='#555' "
                     f"text-anchor='middle'>{escape(x_title[:40])}</text>")
    return axis
