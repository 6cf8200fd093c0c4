"""Reading tabular data files (CSV, TSV, Parquet, JSON Lines, NPY) into columns.

The public API: `read_table` for a whole file (a sample), `open_table` for a
stream of column chunks (batch scoring, drift), `expand_paths` for files,
directories and globs, `csv_rows` for CSV rows with file:line errors.
"""

from mlship.data.chunks import count_rows, file_columns, open_table
from mlship.data.tables import FORMATS, NPY_COLUMN, Table, csv_rows, expand_paths, read_table

__all__ = ["FORMATS", "NPY_COLUMN", "Table", "count_rows", "csv_rows", "expand_paths", "file_columns",
           "open_table", "read_table"]
