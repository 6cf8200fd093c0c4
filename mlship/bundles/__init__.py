"""The edge bundle format: write, read, verify, sign."""
