"""Train the readmission-risk example on SYNTHETIC data (generated patients, not real ones).

    python train.py                  # data/train.csv, sample.csv, history.csv, model-1.0.0.onnx, model-1.1.0.onnx
    python train.py --week logs/week # a week of prediction logs from 1.1.0, drift injected in the last two days
    python train.py --retrain        # model-1.2.0.onnx, trained on the drifted population

Columns: age, prior_admissions, length_of_stay (days), num_medications,
num_diagnoses, emergency_admission (0/1), diagnosis_group (0 circulatory,
1 respiratory, 2 diabetes, 3 injury, 4 other); label `readmitted` (within 30
days). The generator and the logistic-regression trainer are mlship's own
(mlship.demo), so this needs only mlship.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mlship.demo import LABEL, fit_logistic, logistic_onnx, matrix, patients, train_models, write_week

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--week", type=Path, help="Write a week of prediction logs here.")
    parser.add_argument("--retrain", action="store_true", help="Train 1.2.0 on the drifted population.")
    args = parser.parse_args()
    data = HERE / "data"
    if args.week:
        write_week(data / "model-1.1.0.onnx", args.week)
        print(f"wrote 7 days of prediction logs to {args.week} (drift in days 6 and 7)")
    elif args.retrain:
        rng = np.random.default_rng(99)
        recent = patients(6000, rng, drift=1.0)
        params = fit_logistic(matrix(recent), recent[LABEL], l2=1e-2, balanced=True)
        out = data / "model-1.2.0.onnx"
        out.write_bytes(logistic_onnx(*params, doc="SYNTHETIC readmission-risk model 1.2.0, retrained after drift"))
        print(f"retrained: {out}")
    else:
        models = train_models(data)
        print("wrote", ", ".join(str(p.relative_to(HERE)) for p in models.values()), "and data/*.csv")


if __name__ == "__main__":
    main()
