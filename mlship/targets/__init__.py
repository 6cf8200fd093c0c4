"""Where artifacts go: S3 (and S3-compatible stores), file systems; chosen by URL scheme."""
