"""Scoring files in batch: streamed chunks, safe outputs, local or Ray engines."""
