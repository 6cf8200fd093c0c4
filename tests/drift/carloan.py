"""NannyML's synthetic car-loan data, from the `nannyml` wheel (the package index, not the internet).

Reference (50,000 rows, labelled), analysis (50,000 rows; drift in the
second half) and the analysis targets, as NannyML ships them.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

VERSION = "0.13.1"
FILES = {"reference": "synthetic_car_loan_reference.csv", "analysis": "synthetic_car_loan_analysis.csv",
         "targets": "synthetic_car_loan_analysis_target.csv"}
STABLE = ("debt_to_income_ratio", "driver_tenure", "size_of_downpayment")
DRIFTING = ("car_value", "loan_length", "repaid_loan_on_prev_car", "salary_range")


def car_loan(directory: Path) -> dict[str, Path]:
    """The three CSV files, unpacked into `directory` (skips the test when the wheel is unavailable)."""
    wheel = next(directory.glob("nannyml-*.whl"), None)
    if wheel is None:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"nannyml=={VERSION}",
                               "-d", str(directory)], capture_output=True, text=True)
        wheel = next(directory.glob("nannyml-*.whl"), None)
        if done.returncode or wheel is None:
            pytest.skip(f"the nannyml {VERSION} wheel is not available: {done.stderr.strip()[-200:]}")
    with zipfile.ZipFile(wheel) as archive:
        for name in FILES.values():
            (directory / name).write_bytes(archive.read(f"nannyml/datasets/data/{name}"))
    return {key: directory / name for key, name in FILES.items()}
