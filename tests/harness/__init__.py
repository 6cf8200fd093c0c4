"""Test harness: start real servers (Docker engine, OCI registry, moto, nginx) on loopback."""
