"""Every model of the converters' corpus (tests/models_corpus.py) goes through
check with its sample and labels, and predict on CSV and Parquet, from a
project whose mlship.yaml declares `features:` where the model has none."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.models_corpus import CORPUS, CorpusModel
from tests.support import run


@pytest.fixture(scope="module", params=CORPUS, ids=[e.name for e in CORPUS])
def project(request, tmp_path_factory):
    entry = request.param
    absent = [m for m in entry.needs if importlib.util.find_spec(m) is None]
    if absent:
        pytest.skip(f"{entry.name} needs {', '.join(absent)} (the dev extra installs it)")
    root = tmp_path_factory.mktemp(entry.name)
    made: CorpusModel = entry.make(root)
    lines = [f"name: {entry.name}", "model: model.onnx", "sample: sample.csv", f"check: {{labels: {made.labels}}}"]
    if made.features is not None:
        lines.append(f"features: {json.dumps(made.features)}")
    (root / "mlship.yaml").write_text("\n".join(lines) + "\n")
    return root, made


def test_check_with_sample_and_labels(project):
    root, made = project
    result = run("--config", str(root / "mlship.yaml"), "check", "--json")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["smoke"]["source"].endswith("sample.csv") and doc["smoke"]["rows"] == 120
    assert doc["quality"]["task"] == made.task and doc["quality"]["rows"] == 120
    if made.task == "classification":
        assert doc["quality"]["metrics"]["accuracy"] > 0.7
    else:
        assert doc["quality"]["metrics"]["r2"] > 0.5


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_predict_on_csv_and_parquet(project, fmt, tmp_path):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    root, made = project
    source = made.sample
    if fmt == "parquet":
        source = tmp_path / "sample.parquet"
        pq.write_table(pcsv.read_csv(made.sample), source)
    out = tmp_path / "out.parquet"
    result = run("--config", str(root / "mlship.yaml"), "predict", "-i", str(source), "-o", str(out), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["rows"] == 120 and pq.read_table(out).num_rows == 120
