"""Settings of a serving process, shared by the CLI and worker processes."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from mlship.model.features import DeclaredFeatures
from mlship.model.providers import ProviderRequest


class ServeSettings(BaseModel):
    """Everything `mlship serve` needs to start one server process."""

    model_path: Path
    name: str
    version: str
    variant: str = "stable"
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    threads: int | None = Field(None, ge=1, description="onnxruntime intra-op threads per worker (default 1).")
    max_batch: int = Field(64, ge=1)
    max_wait_ms: float = Field(0.0, ge=0)
    cache_size: int = Field(0, ge=0)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1)
    allow_missing: bool = Field(False, description="Pass missing values (null, NaN) to float inputs as NaN "
                                "instead of answering 400 (mlship.yaml `missing_values: allow`).")
    features: DeclaredFeatures | None = Field(None, description="Column names of 2-D inputs (--features, "
                                              "mlship.yaml), over the model's metadata.")
    providers: ProviderRequest | None = Field(None, description="Execution providers, best first (--provider, "
                                              "runtime.providers) [cpu].")
    log_dir: Path | None = None
    log_sample_rate: float = Field(1.0, ge=0, le=1)
    log_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    log_max_age_s: float = Field(3600.0, gt=0)
    log_queue_size: int = Field(10_000, ge=1)
