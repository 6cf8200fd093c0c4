"""Every attack or crash ever found, kept as a test (issue 15)."""
