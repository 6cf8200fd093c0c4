"""Reading tabular data files (CSV, Parquet, JSON Lines, NPY) into columns."""
