"""The docker runtime against a second engine on tcp://127.0.0.1:PORT that requires TLS client
certificates (made here), standing for an on-prem host."""

from __future__ import annotations

import datetime
import ipaddress
from contextlib import closing
from pathlib import Path

import pytest

from mlship.deploy.probe import served_versions
from tests.harness.ports import free_port
from tests.harness.services import start_docker_engine
from tests.support import run


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(name: str, key, issuer_name, issuer_key, *, ca: bool = False, usage=None, ip: bool = False):
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                   .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, key, cert) -> None:
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlship test CA")])
    ca = issue("mlship test CA", ca_key, ca_name, ca_key, ca=True)
    write("ca", ca_key, ca)
    for stem, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        write(stem, key, issue(stem, key, ca_name, ca_key, usage=usage, ip=stem == "server"))
    return {name: directory / f"{name}.pem" for name in ("ca", "server", "client")}


@pytest.fixture
def tls_engine(tmp_path_factory):
    """(engine, tcp address, certificate directory): a dockerd listening on tcp with --tlsverify too."""
    certs = tmp_path_factory.mktemp("engine-certs")
    _certificates(certs)
    port = free_port()
    engine = start_docker_engine(extra_args=(
        "-H", f"tcp://127.0.0.1:{port}", "--tlsverify", f"--tlscacert={certs / 'ca.pem'}",
        f"--tlscert={certs / 'server.pem'}", f"--tlskey={certs / 'server-key.pem'}"))
    try:
        yield engine, f"tcp://127.0.0.1:{port}", certs
    finally:
        engine.stop()


def test_deploy_to_an_engine_that_requires_client_certificates(project, stub_image, tls_engine, monkeypatch):
    engine, address, certs = tls_engine
    # A system CA bundle in the environment (common) must not replace the engine's CA (requests would let it).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    project.record("1.0.0", stub_image(project.name, "1.0.0", engine=engine))
    (project.root / "certs").symlink_to(certs)
    tls = "tls: {ca: certs/ca.pem, cert: certs/client.pem, key: certs/client-key.pem}"
    project.write(host=False, docker=f"host: '{address}', {tls}")
    result = run("-c", str(project.config), "--json", "deploy", f"{project.name}:1.0.0", "--slot", "blue")
    assert result.code == 0, result.stderr
    assert result.json()["where"] == address
    assert served_versions(project.address("blue"), project.name) == ["1.0.0"]

    # A client certificate from another CA: the engine refuses the connection, exit 7, nothing started.
    other = project.root / "other"
    other.mkdir()
    _certificates(other)
    project.write(host=False, docker=f"host: '{address}', tls: {{ca: certs/ca.pem, cert: other/client.pem, "
                                     f"key: other/client-key.pem}}")
    refused = run("-c", str(project.config), "deploy", f"{project.name}:1.0.0", "--slot", "green")
    assert refused.code == 7 and f"no Docker engine answers at {address}" in refused.stderr
    assert served_versions(project.address("green"), project.name) is None
    with closing(engine.client()) as client:
        for container in client.containers.list(all=True):
            container.remove(force=True)
