"""Train the example classifier and export it to ONNX.

Data: scikit-learn's bundled Wisconsin breast-cancer set (569 rows, 30
numeric features; label 1 = benign, 0 = malignant). No download needed.

The model takes ONE float tensor input named `X` of shape [N, 30] (not 30
named inputs): it is what skl2onnx produces by default and what clients of
the Open Inference Protocol send. The column order is stored in the model's
metadata under `mlship.feature_names`, so mlship maps named columns (CSV
headers, JSON keys) onto `X` by name. Outputs: `label` (int64 [N]) and
`probabilities` (float [N, 2]); ZipMap is disabled so both are plain tensors.

Writes, next to this file: model.onnx, sample.csv (the held-out 30% with a
`label` column) and sample-features.npy (the same rows as a float32 matrix).

Also model-mlp.onnx: the same task as a small neural network (a scaler and a
two-layer perceptron in one graph, same input and outputs). Tree ensembles have
no weight matrices for int8 quantization to shrink; this one does, so it is the
model to try `mlship build --edge --quantize int8` on.

    python train.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split
from skl2onnx import to_onnx

HERE = Path(__file__).resolve().parent
SEED = 7


def column_name(name: str) -> str:
    """'mean radius' -> 'mean_radius'."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_")


def main() -> None:
    data = load_breast_cancer()
    features = [column_name(n) for n in data.feature_names]
    X = data.data.astype(np.float32)
    y = data.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=SEED, stratify=y)

    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=SEED)
    model.fit(X_train, y_train)

    onx = to_onnx(model, X_train[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    onx.doc_string = "Breast-cancer classifier (scikit-learn GradientBoostingClassifier), mlship example"
    onnx.helper.set_model_props(onx, {"mlship.feature_names": json.dumps(features), "mlship.labels": "0=malignant,1=benign"})
    onnx.save_model(onx, HERE / "model.onnx")

    rows = [",".join(features + ["label"])]
    for x, label in zip(X_test, y_test):
        rows.append(",".join(f"{v:.6g}" for v in x) + f",{label}")
    (HERE / "sample.csv").write_text("\n".join(rows) + "\n")
    np.save(HERE / "sample-features.npy", X_test)
    print(f"test accuracy {model.score(X_test, y_test):.4f} on {len(y_test)} rows")
    train_mlp(X_train, y_train, X_test, y_test, features)


def train_mlp(X_train, y_train, X_test, y_test, features: list[str]) -> None:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=400, random_state=SEED))
    mlp.fit(X_train, y_train)
    onx = to_onnx(mlp, X_train[:1], options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    onx.doc_string = "Breast-cancer classifier (scikit-learn StandardScaler + MLPClassifier), mlship example"
    onnx.helper.set_model_props(onx, {"mlship.feature_names": json.dumps(features), "mlship.labels": "0=malignant,1=benign"})
    onnx.save_model(onx, HERE / "model-mlp.onnx")
    print(f"mlp test accuracy {mlp.score(X_test, y_test):.4f}")


if __name__ == "__main__":
    main()
