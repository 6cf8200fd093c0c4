"""The SageMaker router against moto's server, the S3 state store, and refused input."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.rollout.overlap import s3_lock_held, run_overlapping
from tests.support import run


def endpoint_weights(client, endpoint: str) -> dict[str, float]:
    doc = client.describe_endpoint(EndpointName=endpoint)
    return {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in doc["ProductionVariants"]}


@pytest.fixture
def sagemaker(s3_server, tmp_path, monkeypatch):
    """An endpoint with production variants blue (weight 1) and green (0), a bucket for states, mlship.yaml."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    sm = s3_server.client("sagemaker")
    tag = uuid.uuid4().hex[:8]
    for model, version in (("m1", "1.0.0"), ("m2", "2.0.0")):  # the versions `start` checks the variants run
        sm.create_model(ModelName=f"{model}-{tag}", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bc:1"},
                        Tags=[{"Key": "mlship:version", "Value": version}])
    variants = [{"VariantName": name, "ModelName": f"{model}-{tag}", "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}
                for name, model, weight in (("blue", "m1", 1.0), ("green", "m2", 0.0))]
    sm.create_endpoint_config(EndpointConfigName=f"cfg-{tag}", ProductionVariants=variants)
    endpoint = f"bc-{tag}"
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"cfg-{tag}")
    bucket = f"rollouts-{tag}"
    s3_server.client("s3").create_bucket(Bucket=bucket)
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "mlship.yaml").write_text(f"""name: bc
targets:
  shared: {{type: s3, url: "s3://{bucket}/rollouts", endpoint_url: "{s3_server.endpoint_url}"}}
rollout:
  router: {{type: sagemaker, endpoint: {endpoint}, endpoint_url: "{s3_server.endpoint_url}", region: us-east-1}}
  state: shared
  steps: [10, 50, 100]
  logs: [{logs}]
  analysis: {{min_requests: 0}}
""")
    return sm, endpoint, tmp_path, s3_server.client("s3"), bucket


def ms(project, *args):
    return run("-c", str(project / "mlship.yaml"), "rollout", *args)


def test_sagemaker_weights_move_per_step_and_abort_restores_them(sagemaker):
    sm, endpoint, project, s3, bucket = sagemaker
    assert endpoint_weights(sm, endpoint)["blue"] == 1.0
    assert ms(project, "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    assert endpoint_weights(sm, endpoint) == {"blue": 90.0, "green": 10.0}
    assert ms(project, "step", "bc").code == 0
    assert endpoint_weights(sm, endpoint) == {"blue": 50.0, "green": 50.0}
    result = ms(project, "--json", "abort", "bc")
    assert result.code == 6 and result.json()["rollout"]["aborted"]
    assert endpoint_weights(sm, endpoint) == {"blue": 100.0, "green": 0.0}
    # The state lives in the bucket, with its audit log; no lock is left behind.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["rollouts/bc.json"]
    doc = json.loads(s3.get_object(Bucket=bucket, Key="rollouts/bc.json")["Body"].read())
    assert [e["verb"] for e in doc["history"]] == ["start", "step", "abort"]
    # Someone moves the weights by hand: the next verb puts them back where the state says.
    sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[
        {"VariantName": "blue", "DesiredWeight": 30.0}, {"VariantName": "green", "DesiredWeight": 70.0}])
    status = ms(project, "--json", "status", "bc")
    assert "repair" in status.json()["message"]
    assert ms(project, "abort", "bc").code == 6
    assert endpoint_weights(sm, endpoint) == {"blue": 100.0, "green": 0.0}
    assert json.loads(s3.get_object(Bucket=bucket, Key="rollouts/bc.json")["Body"].read())["history"][-1]["verb"] == "repair"


def test_concurrent_steps_with_the_s3_state_take_one_step(sagemaker, s3_server):
    sm, endpoint, project, s3, bucket = sagemaker
    assert ms(project, "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    # Both steps have started and wait for the S3 lock object (the test holds it) before either acts.
    args = ["-c", str(project / "mlship.yaml"), "--json", "rollout", "step", "bc"]
    results = run_overlapping(s3_lock_held(s3, bucket, "rollouts/bc.lock"), args, args)
    assert all(r.code == 0 for r in results), [r.stderr for r in results]
    assert sum("already taken by a concurrent call" in json.loads(r.stdout)["message"] for r in results) == 1
    assert endpoint_weights(sm, endpoint) == {"blue": 50.0, "green": 50.0}
    doc = json.loads(s3.get_object(Bucket=bucket, Key="rollouts/bc.json")["Body"].read())
    assert [e["verb"] for e in doc["history"]] == ["start", "step"]


def test_sagemaker_shadow_failure_is_exit_7_and_changes_nothing(sagemaker):
    sm, endpoint, project, s3, bucket = sagemaker
    result = ms(project, "start", "bc", "--strategy", "shadow", "--candidate", "2.0.0", "--stable", "1.0.0")
    assert result.code == 7 and "shadow variant" in result.stderr and endpoint in result.stderr
    assert endpoint_weights(sm, endpoint)["green"] == 0.0
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_refused_input(sagemaker, tmp_path):
    sm, endpoint, project, s3, bucket = sagemaker
    assert ms(project, "step", "nope").code == 2
    r = ms(project, "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0", "--steps", "50,10")
    assert r.code == 2 and "increasing" in r.stderr
    r = ms(project, "start", "bc", "--candidate", "2.0.0")
    assert r.code == 2 and "--stable" in r.stderr
    r = ms(project, "start", "bc", "--candidate", "1.0.0", "--stable", "1.0.0")
    assert r.code == 2 and "stable version already" in r.stderr
    r = ms(project, "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0", "--pause", "ten minutes")
    assert r.code == 2 and "duration" in r.stderr
    assert ms(project, "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0", "--pause", "1h").code == 0
    again = ms(project, "--json", "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0")
    assert again.code == 0 and "already started" in again.json()["message"]  # idempotent
    r = ms(project, "start", "bc", "--candidate", "3.0.0")
    assert r.code == 2 and "already rolling out 2.0.0" in r.stderr
    r = ms(project, "step", "bc")
    assert r.code == 5 and "pause left" in r.stdout  # --pause 1h: too early for the next step
    assert endpoint_weights(sm, endpoint) == {"blue": 90.0, "green": 10.0}
    # No router configured; no logs for the gate; a damaged state file.
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "mlship.yaml").write_text("name: bc\n")
    r = run("-c", str(tmp_path / "plain" / "mlship.yaml"), "rollout", "start", "bc", "--candidate", "2", "--stable", "1")
    assert r.code == 2 and "no router configured" in r.stderr
    state_dir = tmp_path / "plain" / ".mlship" / "rollouts"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "bc.json").write_text("{not json")
    r = run("-c", str(tmp_path / "plain" / "mlship.yaml"), "rollout", "status", "bc")
    assert r.code == 3 and "bc.json" in r.stderr and "not a rollout state" in r.stderr
    assert (state_dir / "bc.json").read_text() == "{not json"


def test_status_watch_follows_until_done_or_timeout(sagemaker):
    import time

    sm, endpoint, project, s3, bucket = sagemaker
    assert ms(project, "start", "bc", "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    started = time.monotonic()
    result = ms(project, "--json", "status", "bc", "--watch", "--timeout", "1.5")
    assert result.code == 0 and result.json()["rollout"]["phase"] == "Progressing"
    assert 1.5 <= time.monotonic() - started < 10  # watched until the timeout
    assert result.json()["live"] == {"stable": "blue", "candidate": "green", "weight": 10.0, "mirror": False}
    assert ms(project, "abort", "bc").code == 6
    started = time.monotonic()
    assert ms(project, "status", "bc", "--watch", "--timeout", "30").code == 6
    assert time.monotonic() - started < 10  # an aborted rollout ends the watch at once
