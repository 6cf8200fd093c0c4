"""`mlship doctor` never prints a credential, even one written into a configured URL."""

from __future__ import annotations

from mlship.urls import redact
from tests.harness.ports import free_port
from tests.support import run

PASSWORD = "pw-in-url-7Rk2"


def test_credentials_in_configured_urls_are_not_printed(tmp_path, monkeypatch):
    # Clients quote the URL they could not reach (botocore: "Invalid endpoint: http://user:pw@…").
    monkeypatch.setenv("HOME", str(tmp_path))
    port = free_port()
    config = tmp_path / "mlship.yaml"
    config.write_text(
        "name: m\nversion: 1.0.0\n"
        f"targets:\n  leaky: {{type: s3, url: 's3://b/p', endpoint_url: 'http://AKIAX:{PASSWORD}@127.0.0.1:{port}'}}\n"
        f"rollout:\n  analysis:\n    prometheus: {{url: 'http://admin:{PASSWORD}@127.0.0.1:{port}'}}\n")
    for args in (["doctor"], ["doctor", "--json"], ["doctor", "--verbose"]):
        result = run("-c", str(config), *args)
        assert result.code == 7, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert "leaky (s3 s3://b/p)" in result.stdout + result.stderr


def test_redact_hides_user_info_signed_queries_tokens_and_keys():
    assert redact("GET https://u:p@h/x?sv=1&sig=abc&X-Amz-Signature=def") == "GET https://***@h/x?…"
    assert redact("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0;EndpointSuffix=x") == \
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=***;EndpointSuffix=x"
    assert redact("401: Authorization: Bearer eyJhbGciOi.abc-def") == "401: Authorization: Bearer ***"
    assert redact("refused: password=hunter2 and token: abc123") == "refused: password=*** and token=***"
    assert redact("is the endpoint up? no answer in 5 s") == "is the endpoint up? no answer in 5 s"
    assert redact("u:p@registry.local:5000/ml") == "***@registry.local:5000/ml"
    assert redact("reachable (/v2/ answered 401)") == "reachable (/v2/ answered 401)"
