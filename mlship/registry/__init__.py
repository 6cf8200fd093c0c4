"""The OCI distribution client (pulls, pushes, auth) and engine pushes to registries and ECR."""
