"""Drift and performance: profiles, statistics, windows, reports."""
