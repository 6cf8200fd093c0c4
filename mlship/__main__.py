"""`python -m mlship`."""

from mlship.cli import run

run()
