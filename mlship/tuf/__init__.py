"""The Update Framework (python-tuf) for edge releases: keys, the per-model repository, the device client."""
