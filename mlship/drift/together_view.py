"""The multivariate and estimated-performance sections of the drift reports: terminal
lines, Markdown and HTML (a chart per check over the windows, with its band or threshold)."""

from __future__ import annotations

from html import escape
from typing import Any, Optional

from mlship.drift.cbpe import METRICS, EstimatedPerformance
from mlship.drift.multivariate import MultivariateDrift

W, H, PAD = 360, 170, 30
LINE, BAND, REALIZED, ALERT = "#4c78a8", "#c6d6ea", "#54a24b", "#e45756"


def multivariate_text(mv: MultivariateDrift) -> str:
    """One line: each check's overall result against its threshold."""
    if mv.note:
        return f"multivariate: not checked: {mv.note}"
    parts = []
    if mv.reconstruction is not None:
        r = mv.reconstruction.overall
        parts.append(f"reconstruction error {r.error:.4f} (band {r.lower:.4f}–{r.upper:.4f}, "
                     f"{mv.reconstruction.components} PCA components){' DRIFT' if r.drifted else ''}")
    if mv.classifier is not None:
        c = mv.classifier.overall
        parts.append(f"domain classifier AUC {c.auc:.3f} (threshold {c.threshold:.3f}){' DRIFT' if c.drifted else ''}")
    flagged = [i for i, _ in enumerate(_windows(mv)) if mv.window_flags(i)]
    windows = f"; windows flagged: {len(flagged)}" if _windows(mv) else ""
    return "multivariate: " + "; ".join(parts) + windows


def estimate_text(est: EstimatedPerformance) -> str:
    """One line: the overall estimates (or realized metrics) and the windows with alerts."""
    if est.note or est.overall is None:
        return f"estimated performance: not estimated: {est.note}"
    shown = ", ".join(f"{k} {m.value:.4f}{'' if m.source == 'estimated' else ' (realized)'}"
                      for k, m in est.overall.metrics.items())
    alerts = [w.label for w in est.windows if w is not None and any(m.alert for m in w.metrics.values())]
    return (f"estimated performance (CBPE): {shown}"
            + (f"; windows outside the reference range: {len(alerts)} (first: {alerts[0]})" if alerts else ""))


def terminal_lines(report: Any) -> list[str]:
    """Plain lines for the terminal report."""
    found = []
    if report.multivariate is not None:
        found.append(multivariate_text(report.multivariate))
    if report.estimated_performance is not None:
        found.append(estimate_text(report.estimated_performance))
    return found


def markdown_lines(report: Any) -> list[str]:
    """The sections for the Markdown summary."""
    lines: list[str] = []
    mv, est = report.multivariate, report.estimated_performance
    if mv is not None:
        lines += ["", f"**Multivariate:** {multivariate_text(mv).split(': ', 1)[1]}"]
        rows = [(i, w) for i, w in enumerate(report.windows) if not w.insufficient]
        if rows and not mv.note:
            lines += ["", "| window | reconstruction error (band) | classifier AUC (threshold) | flagged by |",
                      "|---|---|---|---|"]
            for i, w in rows:
                r = mv.reconstruction.windows[i] if mv.reconstruction else None
                c = mv.classifier.windows[i] if mv.classifier else None
                lines.append(f"| {w.label} | " + (f"{r.error:.4f} ({r.lower:.4f}–{r.upper:.4f})" if r else "")
                             + " | " + (f"{c.auc:.3f} ({c.threshold:.3f})" if c else "") + " | "
                             + ", ".join(mv.window_flags(i)) + " |")
    if est is not None:
        lines += ["", f"**{estimate_text(est)[0].upper()}{estimate_text(est)[1:]}**"]
        windows = [w for w in est.windows if w is not None]
        if windows:
            lines += ["", "| window | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
            for w in windows:
                lines.append(f"| {w.label} | " + " | ".join(_cell(w.metrics.get(m)) for m in METRICS) + " |")
    return lines


def _cell(metric: Any) -> str:
    if metric is None:
        return ""
    mark = "⚠️ " if metric.alert else ""
    return f"{mark}{metric.value:.4f} ±{(metric.upper - metric.value):.4f}" + (" (realized)" if metric.source ==
                                                                             "realized" else "")


def _windows(mv: MultivariateDrift) -> list[Any]:
    check = mv.reconstruction or mv.classifier
    return check.windows if check is not None else []


# -- HTML -----------------------------------------------------------------------------


def html_sections(report: Any) -> str:
    """The multivariate and estimated-performance sections of the HTML report."""
    return _multivariate_html(report) + _estimate_html(report)


def _multivariate_html(report: Any) -> str:
    mv: Optional[MultivariateDrift] = report.multivariate
    if mv is None:
        return ""
    out = ["<h2>Multivariate drift</h2>", f"<p>{escape(multivariate_text(mv))}</p>"]
    labels = [w.label for w in report.windows]
    figures = []
    if mv.reconstruction is not None and labels:
        r = mv.reconstruction.windows
        figures.append(_figure(
            f"Reconstruction error per window (PCA, {mv.reconstruction.components} components; band: reference "
            f"chunks ± {mv.reconstruction.band:g} σ)",
            band_chart(labels, [w.error if w else None for w in r], [w.lower if w else None for w in r],
                       [w.upper if w else None for w in r], [bool(w and w.drifted) for w in r])))
    if mv.classifier is not None and labels:
        c = mv.classifier.windows
        figures.append(_figure(
            "Domain classifier ROC AUC per window (dashed: threshold)",
            band_chart(labels, [w.auc if w else None for w in c], None, [w.threshold if w else None for w in c],
                       [bool(w and w.drifted) for w in c], floor=0.5)))
    return "".join(out) + (f"<div class='grid'>{''.join(figures)}</div>" if figures else "")


def _estimate_html(report: Any) -> str:
    est: Optional[EstimatedPerformance] = report.estimated_performance
    if est is None:
        return ""
    out = ["<h2>Estimated performance (CBPE)</h2>", f"<p>{escape(estimate_text(est))}</p>"]
    windows = [w for w in est.windows if w is not None]
    figures = []
    for metric in METRICS if windows else ():
        values = [w.metrics.get(metric) for w in windows]
        if not any(values):
            continue
        ref = est.reference.get(metric)
        figures.append(_figure(
            f"{metric}: estimated (band: ± 3 sampling errors), realized where labelled; reference range "
            + (f"{ref.lower:.3f}–{ref.upper:.3f}" if ref else ""),
            band_chart([w.label for w in windows], [v.estimated if v else None for v in values],
                       [v.estimated - (v.upper - v.value) if v else None for v in values],
                       [v.estimated + (v.upper - v.value) if v else None for v in values],
                       [bool(v and v.alert) for v in values], realized=[v.realized if v else None for v in values],
                       limits=(ref.lower, ref.upper) if ref else None)))
    legend = (f"<div class='legend'><span style='background:{LINE}'></span>estimated"
              f"<span style='background:{REALIZED}'></span>realized<span style='background:{ALERT}'></span>"
              "alert (outside the reference range)</div>")
    return "".join(out) + (f"<div class='grid'>{''.join(figures)}</div>{legend}" if figures else "")


def _figure(caption: str, svg: str) -> str:
    return f"<figure class='chart'><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def band_chart(labels: list[str], values: list[Optional[float]], lower: Optional[list[Optional[float]]],
               upper: list[Optional[float]], flagged: list[bool], *, realized: Optional[list[Optional[float]]] = None,
               limits: Optional[tuple[float, float]] = None, floor: Optional[float] = None) -> str:
    """A value per window as a line, its band shaded (or, without `lower`, its threshold dashed),
    flagged windows as red points; `realized` as a second line; `limits` as dotted lines."""
    pool = [v for seq in (values, lower or [], upper, realized or []) for v in seq if v is not None]
    pool += list(limits or ()) + ([floor] if floor is not None else [])
    lo, hi = min(pool, default=0.0), max(pool, default=1.0)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad
    n = max(len(labels) - 1, 1)

    def x(i: int) -> float:
        return PAD + (W - 2 * PAD) * i / n

    def y(v: float) -> float:
        return H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {W} {H}' width='100%' role='img'>"]
    if lower is not None:
        top = [(x(i), y(u)) for i, u in enumerate(upper) if u is not None]
        bottom = [(x(i), y(b)) for i, b in enumerate(lower) if b is not None]
        if top and bottom:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in top + bottom[::-1])
            out.append(f"<polygon points='{points}' fill='{BAND}' opacity='0.7'/>")
    else:
        out.append(_path([(x(i), y(u)) for i, u in enumerate(upper) if u is not None], ALERT, dash="4 3"))
    for bound in limits or ():
        out.append(f"<line x1='{PAD}' x2='{W - PAD}' y1='{y(bound):.1f}' y2='{y(bound):.1f}' stroke='#999' "
                   "stroke-dasharray='1 3'/>")
    for series, color in ((values, LINE), (realized, REALIZED)):
        if series is None:
            continue
        out.append(_path([(x(i), y(v)) for i, v in enumerate(series) if v is not None], color))
        for i, v in enumerate(series):
            if v is not None:
                fill = ALERT if flagged[i] and series is values else color
                out.append(f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='3' fill='{fill}'><title>"
                           f"{escape(labels[i])}: {v:.4g}</title></circle>")
    out.append(f"<line x1='{PAD}' y1='{H - PAD}' x2='{W - PAD}' y2='{H - PAD}' stroke='#999'/>"
               f"<line x1='{PAD}' y1='{PAD}' x2='{PAD}' y2='{H - PAD}' stroke='#999'/>"
               f"<text x='2' y='{PAD + 4}' font-size='10' fill='#555'>{hi:.3g}</text>"
               f"<text x='2' y='{H - PAD}' font-size='10' fill='#555'>{lo:.3g}</text>")
    if labels:
        out.append(f"<text x='{PAD}' y='{H - 8}' font-size='10' fill='#555'>{escape(labels[0])}</text>"
                   f"<text x='{W - PAD}' y='{H - 8}' font-size='10' fill='#555' text-anchor='end'>"
                   f"{escape(labels[-1])}</text>")
    return "".join(out) + "</svg>"


def _path(points: list[tuple[float, float]], color: str, *, dash: str = "") -> str:
    if not points:
        return ""
    dashes = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<polyline fill='none' stroke='{color}' stroke-width='2'{dashes} "
            f"points='{' '.join(f'{a:.1f},{b:.1f}' for a, b in points)}'/>")
