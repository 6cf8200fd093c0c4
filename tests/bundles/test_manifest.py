"""BundleManifest: the one model of manifest.json that building writes and the device reads."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlship.bundles.manifest import SCHEMA, BundleManifest, FileEntry, check_file_entries, parse_manifest
from mlship.errors import InvalidInputError

DIGEST = hashlib.sha256(b"model").hexdigest()


def written() -> BundleManifest:
    return BundleManifest(name="bc", version="1.0.0", created="2026-01-01T00:00:00Z", model="model.onnx",
                          files=[FileEntry(path="model.onnx", sha256=DIGEST, size=5)],
                          signature={"inputs": [], "outputs": []}, opsets={"ai.onnx": 17}, ir_version=8,
                          min_onnxruntime="1.20", source_model_sha256=DIGEST, quantization=None)


def test_written_json_has_the_schema_sorted_keys_and_reads_back_equal():
    raw = written().to_json()
    doc = json.loads(raw)
    assert doc["schema"] == SCHEMA and list(doc) == sorted(doc) and doc["quantization"] is None
    assert raw == json.dumps(doc, indent=1, sort_keys=True).encode()
    assert parse_manifest(raw, "b.mlbundle") == written()


def test_a_minimal_manifest_reads_and_unknown_keys_are_dropped():
    raw = json.dumps({"name": "m", "version": "1", "model": "m.onnx", "later": {"x": 1},
                      "files": [{"path": "m.onnx", "sha256": DIGEST, "size": 5, "mode": 1}]}).encode()
    manifest = parse_manifest(raw, "b")
    assert manifest.schema_id == SCHEMA and manifest.created is None
    assert manifest.files == [FileEntry(path="m.onnx", sha256=DIGEST, size=5)]
    assert "later" not in manifest.model_dump()


@pytest.mark.parametrize("field,value", [("created", 5), ("opsets", {"ai.onnx": "x"}), ("signature", []),
                                         ("opsets", {"\nforged line": "x"})])
def test_a_descriptive_field_of_the_wrong_type_is_refused_on_one_line(field, value):
    doc = json.loads(written().to_json())
    doc[field] = value
    with pytest.raises(InvalidInputError, match=f"manifest.json of b: '?{field}") as info:
        parse_manifest(json.dumps(doc).encode(), "b")
    assert "\n" not in str(info.value)


def test_file_entries_name_the_list_and_the_field_where_told():
    with pytest.raises(InvalidInputError, match="^idx: 1: a 'files' entry has no 'size'"):
        check_file_entries([{"path": "a", "sha256": DIGEST}], "idx: 1", "idx")
    with pytest.raises(InvalidInputError, match="^idx: file path '../a' must be a relative path inside m/1/"):
        check_file_entries([{"path": "../a", "sha256": DIGEST, "size": 1}], "idx: 1", "idx", inside="m/1/")
