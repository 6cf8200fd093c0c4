"""The built-in health check of an installed version: `python -m mlship.edge.smoke VERSION_DIR`.

Run by `edge sync` in a process of its own (a model that crashes onnxruntime or
hangs cannot take the sync with it): load the model, run it on the bundle's
smoke.json rows (or one generated row), and require finite outputs with one
row per input row. Prints one line; exit 0 healthy, 1 not.
"""

from __future__ import annotations

import sys
from pathlib import Path


def smoke_check(folder: Path) -> str:
    """What ran, when the model is healthy; ValueError naming the problem otherwise."""
    import numpy as np

    from mlship.bundles.manifest import verify_directory
    from mlship.bundles.smoke import SMOKE, read_smoke
    from mlship.errors import MlshipError
    from mlship.model.feeds import generated_feeds
    from mlship.model.runner import Runner

    try:
        manifest = verify_directory(folder, str(folder))
        runner = Runner.from_path(folder / manifest.model)
        if (folder / SMOKE).is_file():
            feeds, rows = read_smoke(folder / SMOKE)
            what = f"bundle sample ({rows} rows)"
        else:
            feeds, rows, what = generated_feeds(runner.signature, 1), 1, "generated input (1 row)"
        outputs = runner.run(feeds)
    except MlshipError as exc:
        raise ValueError(exc.one_line()) from None
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim and array.shape[0] != rows:
            raise ValueError(f"{what}: output {name} has {array.shape[0]} rows for {rows} input rows")
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise ValueError(f"{what}: output {name} holds {bad} NaN or infinite values")
    return what


def main(argv: list[str]) -> int:
    try:
        sys.stdout.write(f"ok: {smoke_check(Path(argv[0]))}\n")
    except (ValueError, OSError, KeyError, TypeError) as exc:
        sys.stdout.write(f"failed: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
