"""drift --labels on the prediction logs of real three-class skl2onnx models (with and
without ZipMap): per-class metrics, the confusion matrix and one-vs-rest ROC AUC in the
JSON report, and the HTML report's per-class table and confusion-matrix charts in chromium."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sklearn import metrics as sk

from tests.drift.test_html import browse, rendered_page
from tests.models_corpus import NUMERIC, sklearn_multiclass
from tests.support import run


@pytest.fixture(scope="module", params=[True, False], ids=["zipmap", "plain"])
def logged(request, tmp_path_factory):
    """(report document, html path, truth, predicted labels, class probabilities [N, 3], root)."""
    root = tmp_path_factory.mktemp("mc")
    corpus = sklearn_multiclass(root, zipmap=request.param)
    result = run("predict", str(corpus.model), "-i", str(corpus.sample), "-o", str(root / "pred.jsonl"),
                 "--features", ",".join(NUMERIC), "--log-dir", str(root / "logs"))
    assert result.code == 0, result.stderr
    records = [json.loads(line) for f in sorted((root / "logs").glob("*.jsonl")) for line in f.read_text().splitlines()]
    truth = np.loadtxt(corpus.sample, delimiter=",", skiprows=1)[:, -1].astype(np.int64)
    (root / "labels.csv").write_text("request_id,label\n" + "".join(
        f"sample.csv:{i + 1},{t}\n" for i, t in enumerate(truth)))
    outputs = [r["outputs"] for r in records]
    pred = np.array([o.get("label", o.get("output_label")) for o in outputs])
    probs = np.array([o["probabilities"] if "probabilities" in o else [o["output_probability"][k] for k in "012"]
                      for o in outputs])
    by_id = {r["request_id"]: i for i, r in enumerate(records)}
    order = [by_id[f"sample.csv:{i + 1}"] for i in range(len(truth))]
    html = root / "report.html"
    result = run("--json", "drift", "-r", str(root / "logs"), "-c", str(root / "logs"), "--window", "40rows",
                 "--labels", str(root / "labels.csv"), "--html", str(html), "--fail-on", "never")
    assert result.code == 0, result.stderr
    return result.json(), html, truth, pred[order], probs[order], root


def test_per_class_metrics_confusion_and_one_vs_rest_auc_in_the_json_report(logged):
    doc, _, truth, pred, probs, _ = logged
    current = doc["performance"]["current"]
    assert current["task"] == "classification" and current["rows"] == len(truth)
    classes = current["classes"]
    assert classes["confusion"]["labels"] == ["0", "1", "2"]
    assert classes["confusion"]["counts"] == sk.confusion_matrix(truth, pred, labels=[0, 1, 2]).tolist()
    precision, recall, f1, support = sk.precision_recall_fscore_support(truth, pred, labels=[0, 1, 2])
    binned = np.rint(probs * 1000)  # drift keeps scores in 1000 bins: the exact AUC of the binned scores
    aucs = [sk.roc_auc_score(truth == c, binned[:, c]) for c in range(3)]
    for got, p, r, f, s, a in zip(classes["classes"], precision, recall, f1, support, aucs):
        assert (got["precision"], got["recall"], got["f1"], got["roc_auc"]) == pytest.approx((p, r, f, a), abs=1e-6)
        assert got["support"] == s
    assert current["roc_auc"] == pytest.approx(np.mean(aucs), abs=1e-9)
    assert current["roc_auc"] == pytest.approx(sk.roc_auc_score(truth, probs, multi_class="ovr"), abs=2e-3)
    assert current["f1"] == pytest.approx(sk.f1_score(truth, pred, average="macro"), abs=1e-9)
    assert doc["performance"]["reference"]["classes"] == classes  # the same logs on both sides
    windows = doc["windows"]
    assert len(windows) == 3 and all("classes" not in w["performance"] for w in windows)
    assert all(w["performance"]["roc_auc"] is not None for w in windows)


def test_the_html_report_shows_the_confusion_matrix_in_chromium(logged, chromium, tmp_path):
    doc, html, truth, pred, _, _ = logged
    page = rendered_page(chromium, html, tmp_path)
    assert "<h2>Per class</h2>" in page
    figures = re.findall(r"<figure class=\"chart confusion\" data-side=\"(\w+)\">(.*?)</figure>", page, re.S)
    assert [side for side, _ in figures] == ["reference", "current"]
    counts = sk.confusion_matrix(truth, pred, labels=[0, 1, 2])
    for _, figure in figures:
        cells = re.findall(r"<rect class=\"cell\"[^>]*><title>truth (\w+), predicted (\w+): (\d+) ", figure)
        assert len(cells) == 9
        assert {(int(t), int(p)): int(n) for t, p, n in cells} == {(t, p): int(counts[t, p])
                                                                   for t in range(3) for p in range(3)}
    shot = tmp_path / "classes.png"
    capture = browse(chromium, html, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert capture.returncode == 0 and shot.stat().st_size > 20_000


def test_terminal_and_markdown_summaries_list_the_classes(logged):
    doc, _, _, _, _, root = logged
    classes = doc["performance"]["current"]["classes"]["classes"]
    md = root / "summary.md"
    result = run("drift", "-r", str(root / "logs"), "-c", str(root / "logs"), "--labels", str(root / "labels.csv"),
                 "--markdown", str(md), "--fail-on", "never")
    assert result.code == 0, result.stderr
    assert "  per class (F1): " + ", ".join(f"{c['label']} {c['f1']:.4f}" for c in classes) in result.stdout
    text = md.read_text()
    table = text[text.index("| class | precision | recall | F1 | ROC AUC | support |"):].split("\n\n")[0]
    table = table.splitlines()[2:]  # the rows, up to the next section
    assert [r.split("|")[1].strip() for r in table] == ["`0`", "`1`", "`2`"]
    assert f"| `1` | {classes[1]['precision']:.4f} | {classes[1]['recall']:.4f} | {classes[1]['f1']:.4f} |" in text


def test_a_zipmap_with_text_classes_scores_each_class(tmp_path):
    """A ZipMap keyed by class names is logged as outputs.NAME_CLASS columns: the one-vs-rest AUC
    still finds every class's probability."""
    rng = np.random.default_rng(5)
    classes = ["bird", "cat", "dog"]
    truth = rng.integers(0, 3, 300)
    probs = rng.dirichlet(np.ones(3), 300)
    probs[np.arange(300), truth] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    records = [{"ts": "2026-11-01T00:00:00.000Z", "request_id": f"r{i}", "model": "m", "version": "1",
                "variant": "stable", "inputs": {"x": float(i)}, "status": 200, "error": None, "latency_ms": 1.0,
                "outputs": {"output_label": classes[int(np.argmax(p))],
                            "output_probability": dict(zip(classes, map(float, p)))}} for i, p in enumerate(probs)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "labels.csv").write_text("request_id,label\n" + "".join(f"r{i},{classes[t]}\n" for i, t in enumerate(truth)))
    result = run("--json", "drift", "-r", str(tmp_path / "log.jsonl"), "-c", str(tmp_path / "log.jsonl"),
                 "--labels", str(tmp_path / "labels.csv"))
    assert result.code == 0, result.stderr
    current = result.json()["performance"]["current"]
    want = np.mean([sk.roc_auc_score(truth == c, np.rint(probs[:, c] * 1000)) for c in range(3)])
    assert current["roc_auc"] == pytest.approx(want, abs=1e-6)
    assert [c["label"] for c in current["classes"]["classes"]] == classes
