"""`mlship build --edge`: a deterministic, optionally quantized and signed bundle.

NAME-VERSION.mlbundle is a gzipped tar of model.onnx (or model.ort),
manifest.json (schema mlship.bundle/v1), manifest.sig (Ed25519, when a key
is given), reference.profile.json (when configured) and smoke.json (the
sample's first rows, for the device's health check: mlship/bundles/smoke.py). Entries are sorted,
with fixed times, owners and modes, and gzip carries no name or time: the
same inputs give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from mlship.bundles.manifest import MANIFEST, SIGNATURE, BundleManifest, FileEntry
from mlship.bundles.smoke import SMOKE, smoke_sample
from mlship.errors import CheckFailedError, UsageError
from mlship.model.features import DeclaredFeatures, apply_features
from mlship.fsutil import atomic_write


class BundleOptions(BaseModel):
    model: Path
    name: str
    version: str
    output_dir: Path
    quantize: Literal["int8"] | None = None
    static: bool = False
    ort: bool = False
    sample: Path | None = None
    labels: str | None = None
    max_accuracy_drop: float = 0.01
    max_metric_drop: dict[str, float] = {}  # METRIC -> how much worse int8 may be than fp32 (rmse, mae, f1...)
    signing_key: Path | None = None
    profile: Path | None = None
    allow_missing: bool = False  # `missing_values: allow`: NaN in the sample reaches the model
    features: DeclaredFeatures | None = None  # the sample's columns of 2-D inputs (`features:` in mlship.yaml)


class BundleResult(BaseModel):
    path: str
    sha256: str
    size_bytes: int
    model_sha256: str
    manifest: dict[str, Any]  # the BundleManifest written, as its JSON document


def build_bundle(options: BundleOptions) -> BundleResult:
    from mlship.model.load import load_model
    from mlship.model.signature import signature_of
    from mlship.model.validate import run_checker
    from mlship.names import check_name

    # Both name the output file and go into the manifest devices trust: checked before any work.
    check_name(options.name, "name")
    check_name(options.version, "version")
    source = load_model(options.model)
    run_checker(source)
    with tempfile.TemporaryDirectory(prefix="mlship-bundle-") as tmp:
        work = Path(tmp)
        model_path = work / "model.onnx"
        model_path.write_bytes(source.single_file())  # external data (torch's model.onnx.data) inline
        quantization: dict[str, Any] | None = None
        if options.quantize:
            quantization = _quantize(options, model_path)
        model_file = model_path
        if options.ort:
            model_file = _to_ort(model_path)
        files = {model_file.name: model_file.read_bytes()}
        if options.profile:
            files["reference.profile.json"] = options.profile.read_bytes()
        signature = signature_of(source.proto)
        named = apply_features(signature, options.features)  # the declared columns, or UsageError
        if options.sample:
            smoke = _smoke(options, named)
            if smoke is not None:
                files[SMOKE] = smoke
        import onnxruntime as ort

        manifest = BundleManifest(
            name=options.name, version=options.version, created=_created(options.model), model=model_file.name,
            files=[FileEntry(path=p, sha256=hashlib.sha256(d).hexdigest(), size=len(d)) for p, d in sorted(files.items())],
            signature=signature.model_dump(mode="json"),
            opsets=source.opsets, ir_version=source.proto.ir_version,
            min_onnxruntime=".".join(ort.__version__.split(".")[:2]),
            source_model_sha256=source.sha256, quantization=quantization,
            features=named.features if options.features else None,
        )
        files[MANIFEST] = manifest.to_json()
        if options.signing_key:
            from mlship.bundles.signing import sign

            files[SIGNATURE] = sign(files[MANIFEST], options.signing_key)
        data = _deterministic_tar(files)
    out = options.output_dir / f"{options.name}-{options.version}.mlbundle"
    atomic_write(out, data)
    return BundleResult(path=str(out), sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data),
                        model_sha256=source.sha256, manifest=manifest.model_dump(mode="json"))


def _smoke(options: BundleOptions, signature: Any) -> bytes | None:
    """smoke.json for the device's health check: the sample's first rows as the model's inputs (`signature`,
    with the declared columns); None when the sample does not fit them (the device then checks with a
    generated row)."""
    from mlship.errors import MlshipError

    try:
        return smoke_sample(options.sample, signature, allow_missing=options.allow_missing)
    except MlshipError:
        return None


def _created(model: Path) -> str:
    """SOURCE_DATE_EPOCH when set, else the model file's time: never the clock."""
    from datetime import datetime, timezone

    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or model.stat().st_mtime)
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deterministic_tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _quantize(options: BundleOptions, model_path: Path) -> dict[str, Any]:
    """Quantize in place; compare with fp32 on the sample; fail past the accuracy bound."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    fp32 = model_path.with_name("model.fp32.onnx")
    model_path.rename(fp32)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime.quantization advises on the root logger
    try:
        if options.static:
            _quantize_static(options, fp32, model_path)
        else:
            quantize_dynamic(str(fp32), str(model_path), weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(quiet)
    report: dict[str, Any] = {"type": "int8", "mode": "static" if options.static else "dynamic",
                              "size_fp32": fp32.stat().st_size, "size": model_path.stat().st_size}
    if not _has_quantized_ops(model_path):
        # Tree ensembles and ai.onnx.ml linear operators have no weight matrices to quantize: ship fp32 as it was.
        fp32.replace(model_path)
        report.update(applied=False, size=report["size_fp32"], size_reduction=0.0,
                      reason="no MatMul, Gemm or Conv weights to quantize (tree ensembles stay float); shipped fp32")
        return report
    report["applied"] = True
    report["size_reduction"] = round(1 - report["size"] / report["size_fp32"], 4)
    if options.sample:
        report.update(_compare(options, fp32, model_path))
        gate_quantization(options, report)
    return report


def gate_quantization(options: BundleOptions, report: dict[str, Any]) -> None:
    """Exit 4 past --max-accuracy-drop (classifiers) or a --max-metric-drop bound (any task)."""
    drop = report.get("accuracy_drop")
    if drop is not None and drop > options.max_accuracy_drop:
        raise CheckFailedError(f"int8 model loses {drop:.4f} accuracy on {options.sample} "
                               f"(limit {options.max_accuracy_drop})", hint="Keep fp32, or raise --max-accuracy-drop")
    drops = report["metric_drop"]
    for name, limit in options.max_metric_drop.items():
        if name not in drops:
            raise UsageError(f"--max-metric-drop {name}: not a metric of this {report['task']} model",
                             hint=f"Use one of: {', '.join(drops)}")
        if drops[name] > limit:
            before, after = report["metrics_fp32"][name], report["metrics"][name]
            raise CheckFailedError(f"int8 model's {name} is worse by {drops[name]:.4g} on {options.sample} "
                                   f"({before:.4g} -> {after:.4g}, limit {limit:g}{_against(options)})",
                                   hint="Keep fp32, or raise --max-metric-drop")


def _against(options: BundleOptions) -> str:
    return "" if options.labels else "; fp32 outputs as the truth"


QUANTIZED_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear",
                 "QLinearMatMul", "QLinearConv", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm"}


def _has_quantized_ops(path: Path) -> bool:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(node.op_type in QUANTIZED_OPS for node in graph.node)


def _compare(options: BundleOptions, fp32: Path, int8: Path) -> dict[str, Any]:
    import numpy as np

    """fp32 and int8 scored on the sample: on its labels, or with fp32's answers as the truth."""
    from mlship.check import _labels, _numeric_labels
    from mlship.data import read_table
    from mlship.metrics import worse_by
    from mlship.model.feeds import feeds_from_table
    from mlship.model.quality import class_labels, infer_task, predictions, sample_quality
    from mlship.model.runner import Runner

    table = read_table(options.sample)
    before, after = (Runner.from_path(p, features=options.features) for p in (fp32, int8))
    feeds = feeds_from_table(table, before.signature, allow_missing=options.allow_missing)
    out_a, out_b = before.run(feeds), after.run(feeds)
    task = infer_task(before.signature)
    pred_a, _ = predictions(out_a, before.signature, task)
    pred_b, _ = predictions(out_b, after.signature, task)
    truth = pred_a  # without labels, fp32 answers as the truth
    if options.labels:
        truth, source = _labels(options.labels, table)
        truth = _numeric_labels(truth, source) if task == "regression" else truth
    classes = class_labels(before.model.proto)
    m_a, _ = sample_quality(out_a, before.signature, task, truth, classes)
    m_b, _ = sample_quality(out_b, after.signature, task, truth, classes)
    drops = {k: round(worse_by(k, m_a[k], m_b[k]), 6) for k in m_b if k in m_a}
    result: dict[str, Any] = {"rows": table.n_rows, "task": task, "truth": "labels" if options.labels else "fp32",
                              "metrics_fp32": m_a, "metrics": m_b, "metric_drop": drops}
    if task == "classification":
        result["label_agreement"] = round(float(np.mean(pred_a == pred_b)), 6)
        result["accuracy_drop"] = drops["accuracy"]
        if options.labels:
            result.update(accuracy_fp32=m_a["accuracy"], accuracy=m_b["accuracy"])
    else:
        result["max_abs_diff"] = round(float(np.max(np.abs(pred_b - pred_a), initial=0.0)), 8)
    return result


def _quantize_static(options: BundleOptions, fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    from mlship.data import read_table
    from mlship.model.feeds import feeds_from_table, slice_feeds
    from mlship.model.runner import Runner

    if options.sample is None:
        raise UsageError("static quantization calibrates on the sample", hint="Pass --sample FILE")
    feeds = feeds_from_table(read_table(options.sample), Runner.from_path(fp32, features=options.features).signature,
                             allow_missing=options.allow_missing)
    rows = len(next(iter(feeds.values())))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([slice_feeds(feeds, i, i + 1) for i in range(min(rows, 200))])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(fp32), str(out), Reader(), weight_type=QuantType.QInt8)


def _to_ort(model_path: Path) -> Path:
    """ORT format, for onnxruntime builds that read only it (mobile, minimal)."""
    import onnxruntime as ort

    out = model_path.with_suffix(".ort")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(out)
    options.add_session_config_entry("session.save_model_format", "ORT")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    return out
