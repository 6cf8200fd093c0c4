"""Device side of edge deployment: bundles, sync, verify, switch, run."""
