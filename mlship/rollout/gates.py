"""The analysis gate between rollout steps, from the prediction logs of both versions.

Each metric gives pass, fail or inconclusive (too little data). The gate
fails when any metric fails, is inconclusive when any is inconclusive, and
passes otherwise. Records are told apart by `version` (stable's or the
candidate's) and kept when `model` is the rollout's name and `ts` falls in
the step's window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlship.predlog.schema import is_answered, is_error
from mlship.rollout.reports import GateReport, Metric, OutputDelta, Percentiles, Result, ShadowReport


class Window:
    """The records of both versions in [since, until)."""

    def __init__(self, stable: list[dict[str, Any]], candidate: list[dict[str, Any]]) -> None:
        self.stable, self.candidate = stable, candidate


def read_window(specs: Iterable[str], name: str, stable: str, candidate: str, since: str, until: str) -> Window:
    """The records of `name`'s two versions in [since, until), from the logs SPECS name
    (directories read recursively); a malformed record of this model is an error."""
    from mlship.predlog.reader import LogFilter, read_log

    where = LogFilter(model=name, versions=frozenset({stable, candidate}), since=since, until=until)
    sides: dict[str, list[dict[str, Any]]] = {stable: [], candidate: []}
    for chunk in read_log(specs, where=where, complete=True, suffixes={".jsonl"},
                          hint="Check rollout.logs or --logs"):
        for rec in chunk.records or []:
            sides[rec["version"]].append(rec)
    if stable == candidate:
        sides[candidate] = []
    return Window(sides[stable], sides[candidate])


def evaluate(window: Window, analysis: Any, *, shadow: bool, since: str, until: str,
             versions: dict[str, str] | None = None, stable_serves: bool = True, unanswered: int = 0,
             observed: Any = None) -> GateReport:
    """Judge the candidate's records against the thresholds in `analysis` (AnalysisConfig);
    `unanswered` requests (the router's 502/504 for the candidate's slot) count as failed ones, and
    `observed` (the router's own metrics, a SlotMetrics) counts beside the logs: both may see the
    same requests, so the larger count of requests, of errors and the higher p99 are judged."""
    cand, stable = window.candidate, window.stable
    need = analysis.min_requests
    metrics: list[Metric] = []
    n = len(cand) + unanswered
    errors = sum(1 for r in cand if is_error(r.get("status"))) + unanswered
    source = ""
    if observed is not None:
        n, errors, source = max(n, observed.requests), max(errors, observed.errors), f" ({observed.source})"
    enough = n >= need
    metrics.append(Metric(name="requests", value=n, threshold=need, result="pass" if enough else "inconclusive",
                          detail=f"{n} candidate requests (need {need}){source}"))
    if analysis.max_error_rate is not None:
        rate = errors / n if n else 0.0
        limit = analysis.max_error_rate
        if enough or (n and errors > limit * need):  # already past the limit whatever the rest brings
            result: Result = "fail" if rate > limit else "pass"
        else:
            result = "inconclusive"
        metrics.append(Metric(name="error_rate", value=round(rate, 6), threshold=limit, result=result,
                              detail=f"{errors} of {n} failed ({rate:.2%}, limit {limit:.2%}){source}"))
    if analysis.max_p99_latency_ms is not None:
        metrics.append(_latency(cand, observed, analysis.max_p99_latency_ms, need))
    if analysis.max_prediction_drift is not None:
        if stable_serves:
            metrics.append(_prediction_drift(stable, cand, analysis.max_prediction_drift, need))
        else:  # all traffic on the candidate: nothing of stable's to compare in this window
            metrics.append(Metric(name="prediction_drift", threshold=analysis.max_prediction_drift, result="pass",
                                  detail="not applicable: stable gets no traffic at this step"))
    report_shadow = None
    if shadow:
        report_shadow = compare_shadow(stable, cand, rtol=analysis.rtol, atol=analysis.atol)
        if analysis.max_disagreement is not None:
            joined = report_shadow.joined
            dis = 1 - report_shadow.agreement if joined else None
            limit = analysis.max_disagreement
            result = "inconclusive" if joined < max(need, 1) else ("fail" if dis > limit else "pass")
            metrics.append(Metric(name="disagreement", value=round(dis, 6) if dis is not None else None,
                                  threshold=limit, result=result,
                                  detail=f"{dis:.2%} of {joined} joined requests (limit {limit:.2%})"
                                  if dis is not None else "no request seen by both"))
    if getattr(analysis, "prometheus", None) is not None and analysis.prometheus.queries:
        metrics += prometheus_metrics(analysis.prometheus, versions, since, until)
    results = {m.result for m in metrics}
    overall: Result = "fail" if "fail" in results else "inconclusive" if "inconclusive" in results else "pass"
    return GateReport(result=overall, since=since, until=until, metrics=metrics, shadow=report_shadow,
                      counts={"stable": len(stable), "candidate": n})


def _latency(cand: list[dict[str, Any]], observed: Any, limit: float, need: int) -> Metric:
    """The candidate's p99 latency: from its prediction logs, and the router's metrics when it has them."""
    import numpy as np  # lazily: `rollout start` and `status` never need it
    lat = [r["latency_ms"] for r in cand if is_answered(r.get("status")) and "latency_ms" in r]
    p99 = float(np.percentile(lat, 99)) if lat else None
    seen, source = len(lat), ""
    if observed is not None and observed.p99_latency_ms is not None:
        p99, seen = max(p99 or 0.0, observed.p99_latency_ms), max(seen, observed.requests - observed.errors)
        source = f" ({observed.source})"
    result: Result = "inconclusive" if seen < max(need, 1) or p99 is None else ("fail" if p99 > limit else "pass")
    return Metric(name="p99_latency_ms", value=round(p99, 3) if p99 is not None else None, threshold=limit,
                  result=result, detail=f"p99 {p99:.2f} ms (limit {limit:g} ms){source}" if p99 is not None
                  else "no latencies")


def _flat_outputs(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Output columns of the successful records, named as the drift module names them."""
    from mlship.predlog.reader import flatten_outputs

    columns: dict[str, list[Any]] = {}
    for rec in records:
        if is_answered(rec.get("status")):
            for key, value in flatten_outputs(rec.get("outputs") or {}).items():
                columns.setdefault(key, []).append(value)
    return columns


def _prediction_drift(stable: list[dict[str, Any]], cand: list[dict[str, Any]], limit: float, need: int) -> Metric:
    """The largest PSI between the two versions' output distributions (the drift module's statistics)."""
    import numpy as np  # lazily: `rollout start` and `status` never need it
    from mlship.drift.profile import ColumnProfile
    from mlship.drift.stats import numeric_stats, psi

    if len(stable) < max(need, 1) or len(cand) < max(need, 1):
        return Metric(name="prediction_drift", threshold=limit, result="inconclusive",
                      detail=f"{len(stable)} stable and {len(cand)} candidate requests (need {need} each)")
    a, b = _flat_outputs(stable), _flat_outputs(cand)
    worst, worst_col = 0.0, None
    for col in sorted(set(a) & set(b)):
        ref, cur = ColumnProfile(col), ColumnProfile(col)
        ref.add(np.asarray(a[col], dtype=object))
        cur.add(np.asarray(b[col], dtype=object))
        if ref.kind == "numeric" and cur.kind == "numeric":
            value = numeric_stats(ref, cur).get("psi", 0.0)
        else:
            rc, cc = ref.category_counts(), cur.category_counts()
            cats = sorted(set(rc) | set(cc))
            value = psi(np.array([rc.get(c, 0) for c in cats], float) / max(sum(rc.values()), 1),
                        np.array([cc.get(c, 0) for c in cats], float) / max(sum(cc.values()), 1))
        if value > worst or worst_col is None:
            worst, worst_col = float(value), col
    if worst_col is None:
        return Metric(name="prediction_drift", threshold=limit, result="inconclusive",
                      detail="no successful outputs of both versions to compare")
    return Metric(name="prediction_drift", value=round(worst, 6), threshold=limit,
                  result="fail" if worst > limit else "pass",
                  detail=f"PSI {worst:.4f} on {worst_col} (limit {limit:g})")


def compare_shadow(stable: list[dict[str, Any]], cand: list[dict[str, Any]], *, rtol: float = 1e-5,
                   atol: float = 1e-6) -> ShadowReport:
    """Agreement of the two versions on the same requests, joined by request id (and row): the
    same labels for classifiers; for regressors, float outputs within rtol and atol of stable's."""
    import numpy as np  # lazily: `rollout start` and `status` never need it
    from mlship.metrics import outputs_close

    ok = {(r["request_id"], r.get("row")): r for r in stable if is_answered(r.get("status"))}
    pairs = [(ok[key], r) for r in cand if is_answered(r.get("status"))
             and (key := (r["request_id"], r.get("row"))) in ok]
    agree = 0
    deltas: dict[str, list[float]] = {}
    for s, c in pairs:
        same = True
        so, co = s.get("outputs") or {}, c.get("outputs") or {}
        if so.keys() != co.keys():
            same = False  # renamed or missing outputs are a difference, not agreement
        for key in so.keys() & co.keys():
            x, y = np.asarray(so[key]), np.asarray(co[key])
            if x.shape != y.shape:
                same = False
                continue
            if x.dtype.kind == "f" or y.dtype.kind == "f":
                diff = float(np.max(np.abs(x.astype(float) - y.astype(float)))) if x.size else 0.0
                deltas.setdefault(key, []).append(diff)
                if not _has_discrete(so) and not outputs_close(y, x, rtol=rtol, atol=atol):
                    same = False  # regressors agree within the tolerance
            elif not np.array_equal(x, y):
                same = False
        agree += same
    lat_s = [r["latency_ms"] for r in stable if "latency_ms" in r]
    lat_c = [r["latency_ms"] for r in cand if "latency_ms" in r]
    return ShadowReport(
        joined=len(pairs),
        agreement=round(agree / len(pairs), 6) if pairs else None,
        disagreements=len(pairs) - agree,
        stable_only=len(stable) - len(pairs),
        candidate_errors=sum(1 for r in cand if not is_answered(r.get("status"))),
        output_deltas={k: OutputDelta(mean=round(float(np.mean(v)), 6), max=round(float(np.max(v)), 6))
                       for k, v in sorted(deltas.items())},
        latency_ms={"stable": _percentiles(lat_s), "candidate": _percentiles(lat_c)}, rtol=rtol, atol=atol,
    )


def _has_discrete(outputs: dict[str, Any]) -> bool:
    """True when some output is a label (whole numbers, text, booleans)."""
    import numpy as np  # lazily: `rollout start` and `status` never need it
    for value in outputs.values():
        arr = np.asarray(value)
        if arr.dtype.kind in "iubUSO":
            return True
    return False


def _percentiles(values: list[float]) -> Percentiles:
    import numpy as np  # lazily: `rollout start` and `status` never need it
    if not values:
        return Percentiles()
    p50, p99 = np.percentile(values, [50, 99])
    return Percentiles(p50=round(float(p50), 3), p99=round(float(p99), 3))


def prometheus_metrics(prom: Any, versions: dict[str, str] | None, since: str, until: str) -> list[Metric]:
    """Each configured PromQL query, evaluated now over the step's window."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request
    from string import Template

    from mlship.errors import ServiceError
    from mlship.rollout.state import parse_iso

    window = f"{max(1, int(parse_iso(until) - parse_iso(since)))}s"
    values = {"window": window, **(versions or {})}
    out = []
    for q in prom.queries:
        query = Template(q.query).safe_substitute(values)
        url = f"{prom.url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            with urllib.request.urlopen(url, timeout=prom.timeout_s) as reply:
                doc = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise ServiceError(f"Prometheus at {prom.url} refused query {q.name} ({exc.code}): {detail}") from None
        except (OSError, ValueError) as exc:
            raise ServiceError(f"Prometheus at {prom.url} did not answer query {q.name}: {exc}") from None
        value = _prom_value(doc.get("data", {}))
        bounds = " ".join(b for b in (f"max {q.max:g}" if q.max is not None else "",
                                     f"min {q.min:g}" if q.min is not None else "") if b)
        if value is None:
            out.append(Metric(name=q.name, result="inconclusive", threshold=q.max if q.max is not None else q.min,
                              detail=f"no data for {query}"))
            continue
        failed = (q.max is not None and value > q.max) or (q.min is not None and value < q.min)
        out.append(Metric(name=q.name, value=round(value, 6), threshold=q.max if q.max is not None else q.min,
                          result="fail" if failed else "pass", detail=f"{value:g} ({bounds})"))
    return out


def _prom_value(data: dict[str, Any]) -> float | None:
    """The first sample of a vector or a scalar; None when empty or NaN."""
    result = data.get("result")
    if data.get("resultType") == "scalar" and result:
        raw = result[1]
    elif isinstance(result, list) and result:
        raw = result[0].get("value", [None, None])[1]
    else:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if value != value else value
