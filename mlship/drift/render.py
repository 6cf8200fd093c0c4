"""Drift reports for people: terminal and Markdown."""

from __future__ import annotations

from typing import Any


def verdict(report: dict[str, Any]) -> str:
    share = report["drifted_share"]
    if report["dataset_drift"]:
        return (f"DATASET DRIFT: {len(report['drifted_columns'])} of {_judged(report)} columns drifted "
                f"({share:.0%} >= {report['thresholds']['drift_share']:.0%})")
    return f"no dataset drift: {len(report['drifted_columns'])} of {_judged(report)} columns drifted ({share:.0%})"


def _judged(report: dict[str, Any]) -> int:
    return sum(1 for c in report["columns"] if not c.get("insufficient") and not c.get("ignored"))


def effect_text(column: dict[str, Any]) -> str:
    s = column.get("stats") or {}
    if "wasserstein_norm" in s:
        return f"WD {s['wasserstein_norm']:.3f}σ, KS {s['ks_d']:.3f}, PSI {s['psi']:.3f}"
    if "js" in s:
        return f"JS {s['js']:.3f}, χ² {s['chi2']:.1f}, unseen {s['unseen_share']:.1%}"
    return ""


def render_terminal(report: dict[str, Any], out: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from mlship.console import plain

    # Sources, column names and reasons come from files: Text, never markup.
    out.print(f"reference {report['reference']['source']} ({report['reference']['rows']:,} rows) vs "
              f"current {report['current']['source']} ({report['current']['rows']:,} rows)", markup=False)
    table = Table(show_edge=False)
    for name in ("column", "kind", "drift", "effect size", "missing", "p (BH)", "why"):
        table.add_column(name)
    for c in report["columns"]:
        mark = "[dim]n/a[/dim]" if c.get("insufficient") or c.get("ignored") else (
            "[red]DRIFT[/red]" if c["drifted"] else "[green]ok[/green]")
        miss = c.get("missing") or {}
        missing = f"{miss['reference']:.1%} → {miss['current']:.1%}" if miss else ""
        p_adj = (c.get("stats") or {}).get("p_adj")
        table.add_row(plain(c["name"]), plain(c.get("kind") or ""), mark, effect_text(c), missing,
                      f"{p_adj:.2g}" if p_adj is not None else "", plain("; ".join(c["reasons"])))
    out.print(table)
    for c in report["columns"]:  # the table wraps narrow cells; a type change is worth a whole line
        for reason in c["reasons"]:
            if reason.startswith("type changed"):
                out.print(Text.assemble((c["name"], "bold"), ": ", (reason, "red")))
    windows = report["windows"]
    if windows:
        drifted = [w for w in windows if w.get("dataset_drift")]
        small = [w for w in windows if w.get("insufficient")]
        out.print(f"windows: {len(windows)}, with dataset drift: {len(drifted)}"
                  + (f" (first: {drifted[0]['label']})" if drifted else "")
                  + (f", too small to judge: {len(small)}" if small else ""), markup=False)
    perf = report["performance"]["current"]
    if perf:
        keys = [k for k in ("accuracy", "f1", "roc_auc", "mae", "rmse") if k in perf]
        out.print("performance: " + ", ".join(f"{k} {perf[k]:.4f}" for k in keys) + f" on {perf['rows']:,} labelled rows")
    ops = report["operations"]["overall"]
    if "latency_ms" in ops:
        lat = ops["latency_ms"]
        out.print(f"operations: {ops['requests']:,} requests, error rate {ops['error_rate']:.2%}, latency p50 "
                  f"{lat['p50']:.2f} / p95 {lat['p95']:.2f} / p99 {lat['p99']:.2f} ms")
    if report["read"]["bad_lines"]:
        out.print(Text.assemble((f"skipped {report['read']['bad_lines']} malformed lines", "yellow"),
                                ", e.g. " + report["read"]["examples"][0]))
    out.print(f"[bold]{'[red]' if report['dataset_drift'] else '[green]'}{verdict(report)}[/][/bold]")


def render_markdown(report: dict[str, Any]) -> str:
    """A summary for CI job pages (GitHub step summary, GitLab)."""
    lines = [f"## Drift report: {'⚠️ ' if report['dataset_drift'] else '✅ '}{verdict(report)}", "",
             f"Reference `{report['reference']['source']}` ({report['reference']['rows']:,} rows), "
             f"current `{report['current']['source']}` ({report['current']['rows']:,} rows).", "",
             "| column | kind | drift | effect size | missing | why |", "|---|---|---|---|---|---|"]
    for c in report["columns"]:
        state = "n/a" if c.get("insufficient") or c.get("ignored") else ("**drift**" if c["drifted"] else "ok")
        miss = c.get("missing") or {}
        missing = f"{miss['reference']:.1%} → {miss['current']:.1%}" if miss else ""
        lines.append(f"| `{_cell(c['name'])}` | {c.get('kind') or ''} | {state} | {effect_text(c)} | {missing} | "
                     f"{_cell('; '.join(c['reasons']))} |")
    windows = report["windows"]
    if windows:
        lines += ["", "| window | rows | drifted share | drifted columns |", "|---|---|---|---|"]
        for w in windows:
            share = "too small" if w.get("insufficient") else f"{w['drifted_share']:.0%}"
            lines.append(f"| {w['label']} | {w['rows']:,} | {share} | {', '.join(w['drifted_columns'])} |")
    perf = report["performance"]["current"]
    if perf:
        keys = [k for k in ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse") if k in perf]
        lines += ["", "**Performance:** " + ", ".join(f"{k} {perf[k]:.4f}" for k in keys)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text from data (names, values in reasons) inside one Markdown table cell."""
    return " ".join(text.replace("|", "\\|").split())  # GFM reads \| as a pipe, even in code spans
