"""The headline verdict of a drift report, and the order its columns are shown in.

With windows, people ask "is it drifting now, and since when?": the headline
counts drifted windows and names the start of the latest run of them when the
newest judged window is one. Without windows it is the dataset verdict.
"""

from __future__ import annotations

from mlship.drift.report import ColumnDrift, Verdict, WindowDrift


def ordered(columns: list[ColumnDrift]) -> list[ColumnDrift]:
    """Drifted columns first, then judged ones, each by effect size (largest first), then by name."""
    return sorted(columns, key=lambda c: (not c.drifted, not c.judged, -(c.effect or 0.0), c.name))


def dataset_text(drift: bool, drifted: int, judged: int, share: float, drift_share: float,
                 together: list[str] | tuple[str, ...] = ()) -> str:
    """The verdict over the whole current data (`together`: the multivariate checks that flagged it)."""
    if drift and share < drift_share and together:
        return (f"DATASET DRIFT: the features together drifted ({', '.join(together)}); "
                f"{drifted} of {judged} columns drifted on their own ({share:.0%})")
    if drift:
        return f"DATASET DRIFT: {drifted} of {judged} columns drifted ({share:.0%} >= {drift_share:.0%})"
    if not judged:
        return "nothing judged: every column is too small to judge or ignored"
    return f"no dataset drift: {drifted} of {judged} columns drifted ({share:.0%})"


def headline(dataset: str, dataset_drift: bool, windows: list[WindowDrift], judged_columns: int) -> Verdict:
    """The report's verdict: about the windows when there are any (the reports add the
    dataset verdict on a second line), else `dataset`. Nothing judged (`judged: false`) is
    not "no drift": `mlship drift` exits 5 for it."""
    if not windows:
        nothing = not dataset_drift and not judged_columns
        return Verdict(scope="dataset", drift=dataset_drift, text=dataset, **({"judged": False} if nothing else {}))
    drifted = [w for w in windows if w.dataset_drift]
    small = sum(1 for w in windows if w.insufficient)
    tail = f" ({small} too small to judge)" if small else ""
    if not drifted and small == len(windows):
        return Verdict(scope="windows", drift=False, windows=len(windows), drifted_windows=0, judged=False,
                       text=f"nothing judged: all {len(windows)} windows are too small to judge")
    if not drifted:
        return Verdict(scope="windows", drift=False, windows=len(windows), drifted_windows=0,
                       text=f"no drift in any of {len(windows)} windows{tail}")
    days = all(w.label.endswith(" 00:00") for w in windows)  # daily windows: dates say it
    since = _since(windows, days)
    first, last = _when(drifted[0], days), _when(drifted[-1], days)
    span = first if first == last else f"{first} to {last}"
    where = f", since {since}" if since else f" ({span}; the latest window has none)"
    return Verdict(scope="windows", drift=True, windows=len(windows), drifted_windows=len(drifted), since=since,
                   text=f"DRIFT in {len(drifted)} of {len(windows)} windows{where}{tail}")


def _since(windows: list[WindowDrift], days: bool) -> str | None:
    """The start of the trailing run of drifted windows (too-small windows neither break nor start it)."""
    start = None
    for w in reversed([w for w in windows if not w.insufficient]):
        if not w.dataset_drift:
            break
        start = w
    return _when(start, days) if start is not None else None


def _when(window: WindowDrift, days: bool) -> str:
    """A window's label, without the time of day when every window starts at midnight."""
    return window.label[:-len(" 00:00")] if days else window.label
