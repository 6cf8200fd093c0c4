"""The model's outputs on a reference that lacks them (prediction drift).

Training data holds features and the label, not what the model answers; the
prediction logs hold its outputs (`outputs.NAME`). To judge output drift the
reference is scored once with the batch engine and the outputs' profiles join
the reference's, under the names the logs use. `mlship profile --model` keeps
them in the saved profile, so later runs need neither the data nor the model.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mlship.drift.profile import Profile
from mlship.model.features import DeclaredFeatures

OUTPUT_PREFIX = "outputs."


def output_columns(profile: Profile) -> set[str]:
    """The profile's model outputs (`outputs.NAME` columns)."""
    return {name for name in profile.columns if name.startswith(OUTPUT_PREFIX)}


def needs_scoring(reference: Profile, current: Profile | None = None) -> bool:
    """The reference lacks outputs the current data has (or, without current data, has none)."""
    if current is None:
        return not output_columns(reference)
    return bool(output_columns(current) - output_columns(reference))


def add_model_outputs(reference: Profile, spec: str, model: str | Path, *, chunk_rows: int,
                      features: DeclaredFeatures | None = None) -> None:
    """Score the data `spec` with `model` (batch engine, local; `features` name the columns of
    its 2-D inputs) and add the outputs' column profiles to `reference` as `outputs.NAME`
    (rows the model refused count as missing)."""
    from mlship.batch.job import PredictOptions
    from mlship.batch.run import run_predict

    with tempfile.TemporaryDirectory(prefix="mlship-drift-") as tmp:
        scored = Path(tmp) / "reference-outputs.parquet"
        options = PredictOptions(model=Path(model), input=spec, output=scored, batch_size=chunk_rows,
                                 on_error="skip", rejects=Path(tmp) / "rejects.jsonl", parallel=1,
                                 features=features)
        run_predict(options)
        outputs = _outputs_profile(scored, chunk_rows)
    for name, column in outputs.columns.items():
        column.missing += max(reference.rows - outputs.rows, 0)
        reference.columns[name] = column


def _outputs_profile(path: Path, chunk_rows: int) -> Profile:
    """The batch engine's output file as `outputs.NAME` columns, valued as the logs hold them."""
    import pyarrow.parquet as pq

    from mlship.data.chunks import arrow_column

    profile = Profile()
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        # The engine wrote [N, k] outputs as NAME_0..NAME_k-1 already, as the logs flatten them.
        profile.add_frame({OUTPUT_PREFIX + name: as_logged(arrow_column(batch.column(i)))
                           for i, name in enumerate(batch.schema.names)}, batch.num_rows)
    return profile


def as_logged(values: np.ndarray) -> np.ndarray:
    """float32 outputs as a JSON log holds them: the shortest decimal that reads back as the
    float32 (0.99999994, not 0.9999999403953552), so the two sides bin the same values alike."""
    if values.dtype == np.float32:
        return values.astype(str).astype(np.float64)
    return values
