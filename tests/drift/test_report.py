"""The drift report's contract: the published JSON Schema is the model's, and reports obey it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlship.drift.report import DriftReport, schema_text
from tests.support import ROOT, run

SCHEMA_FILE = ROOT / "docs" / "schemas" / "drift-v1.json"


def test_the_published_schema_is_generated_from_the_model():
    assert SCHEMA_FILE.read_text() == schema_text(), \
        "regenerate it: python -m mlship.drift.report > docs/schemas/drift-v1.json"


def test_a_report_document_validates_against_the_schema_and_reads_back(tmp_path: Path):
    import jsonschema

    rng = np.random.default_rng(8)
    for name, shift in (("ref", 0.0), ("cur", 1.0)):
        pq.write_table(pa.table({"x": rng.normal(shift, 1, 800), "k": rng.choice(["a", "b"], 800)}),
                       tmp_path / f"{name}.parquet")
    result = run("drift", "-r", str(tmp_path / "ref.parquet"), "-c", str(tmp_path / "cur.parquet"),
                 "--window", "300rows", "--json-out", "-")
    assert result.code == 4, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))
    assert DriftReport.model_validate(document).document() == document
