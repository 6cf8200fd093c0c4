"""Container images: the Docker engine builder, the daemonless OCI builder, their layers and wheels."""
