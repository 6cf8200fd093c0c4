"""Real-time serving: the HTTP app, micro-batching, metrics, prediction logs."""
