"""Building artifacts: container images (Docker engine), edge bundles, the versions store."""
