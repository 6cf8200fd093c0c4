"""Reading tabular data files (CSV, TSV, Parquet, JSON Lines, NPY, NPZ) into columns.

The public API: `open_table`, the one reader, for a stream of column chunks
(batch scoring, drift) or a whole file; `read_table` for a whole file read as
a sample (check, bundles, drift's labels); `expand_paths` for files,
directories and globs, `csv_rows` for CSV rows with file:line errors.
"""

from mlship.data.chunks import count_rows, file_columns, open_table, read_table
from mlship.data.tables import FORMATS, NPY_COLUMN, Table, csv_rows, expand_paths

__all__ = ["FORMATS", "NPY_COLUMN", "Table", "count_rows", "csv_rows", "expand_paths", "file_columns",
           "open_table", "read_table"]
