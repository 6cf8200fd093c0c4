"""The sagemaker runtime and SageMaker rollouts that place, check and watch their candidate, on
moto's server (SageMaker, S3, CloudWatch)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone

import pytest

from mlship.versions import BuildRecord, PushRecord, VersionStore
from tests.support import run

ROLE = "arn:aws:iam::123456789012:role/sm"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


class Endpoint:
    """An endpoint whose variant blue runs model NAME-stable (1.0.0) at weight 1 and green one tagged `green`."""

    def __init__(self, server, root, green_version: str | None) -> None:
        self.sm, self.server, self.root = server.client("sagemaker"), server, root
        tag = uuid.uuid4().hex[:8]
        self.name, self.endpoint = f"bc{tag}", f"ep-{tag}"
        for model, version in (("stable", "1.0.0"), ("green", green_version)):
            tags = [{"Key": "mlship:version", "Value": version}] if version else []
            self.sm.create_model(ModelName=f"{self.name}-{model}", ExecutionRoleArn=ROLE, Tags=tags,
                                 PrimaryContainer={"Image": f"{ECR}/{self.name}:{model}"})
        variants = [{"VariantName": slot, "ModelName": f"{self.name}-{model}", "InitialInstanceCount": 1,
                     "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}
                    for slot, model, weight in (("blue", "stable", 1.0), ("green", "green", 0.0))]
        self.sm.create_endpoint_config(EndpointConfigName=f"cfg-{tag}", ProductionVariants=variants)
        self.sm.create_endpoint(EndpointName=self.endpoint, EndpointConfigName=f"cfg-{tag}")
        (root / "logs").mkdir()
        self.write()

    def write(self, deploy: str = "runtime: sagemaker", sagemaker: str = "", router: str = "",
              analysis: str = "min_requests: 0") -> None:
        url = self.server.endpoint_url
        (self.root / "mlship.yaml").write_text(f"""name: {self.name}
rollout:
  router: {{type: sagemaker, endpoint: {self.endpoint}, endpoint_url: "{url}", region: us-east-1{router}}}
  steps: [10, 50, 100]
  logs: [{self.root / 'logs'}]
  analysis: {{{analysis}}}
deploy:
  {deploy}
  sagemaker: {{role_arn: "{ROLE}", poll_s: 1, wait_s: 30{sagemaker}}}
""")

    def record(self, version: str) -> str:
        """A build of `version` pushed to ECR, as `mlship build --image` and `mlship push --image` record them."""
        store = VersionStore(self.root / ".mlship" / "versions.jsonl")
        digest = "sha256:" + uuid.uuid4().hex * 2
        store.append(BuildRecord(name=self.name, version=version, kind="image", model_sha256="0" * 64,
                                 artifact="sha256:" + "1" * 64, tag=f"{self.name}:{version}", builder="oci"))
        store.append(PushRecord(name=self.name, version=version, artifact="sha256:" + "1" * 64,
                                reference=f"{ECR}/{self.name}:{version}", digest=digest))
        return f"{ECR}/{self.name}@{digest}"

    def cli(self, *args):
        return run("-c", str(self.root / "mlship.yaml"), "--json", *args)

    def variants(self) -> dict[str, tuple[str, float]]:
        """Variant -> (its model, its current weight)."""
        doc = self.sm.describe_endpoint(EndpointName=self.endpoint)
        config = self.sm.describe_endpoint_config(EndpointConfigName=doc["EndpointConfigName"])
        weights = {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in doc["ProductionVariants"]}
        return {v["VariantName"]: (v["ModelName"], weights[v["VariantName"]]) for v in config["ProductionVariants"]}

    def put_metrics(self, slot: str, **values: float) -> None:
        """CloudWatch data points of the variant, as SageMaker publishes them (ModelLatency in µs).

        CloudWatch's windows (moto's too) are whole seconds: the points go in a second after
        anything done before this call, and the call returns in a later one, so a step
        before or after never shares its second with them (on a busy machine it did, and a
        step judged the points of the step before)."""
        _next_second()
        cw = self.server.client("cloudwatch")
        dims = [{"Name": "EndpointName", "Value": self.endpoint}, {"Name": "VariantName", "Value": slot}]
        cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[
            {"MetricName": name, "Dimensions": dims, "Value": value, "Timestamp": datetime.now(timezone.utc),
             "Unit": "Microseconds" if name == "ModelLatency" else "Count"} for name, value in values.items()])
        _next_second()


def _next_second() -> None:
    time.sleep(1.0 - time.time() % 1.0 + 0.02)


@pytest.fixture
def endpoint(s3_server, tmp_path, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    return lambda green_version="0.9.0": Endpoint(s3_server, tmp_path, green_version)


def test_deploy_creates_the_model_and_an_endpoint_config_and_updates_the_endpoint(endpoint):
    ep = endpoint()
    image = ep.record("2.0.0")
    before = ep.sm.describe_endpoint(EndpointName=ep.endpoint)["EndpointConfigName"]
    result = ep.cli("deploy", f"{ep.name}:2.0.0", "--slot", "green")
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["where"] == f"sagemaker:{ep.endpoint}" and doc["placement"]["id"] == f"{ep.name}-2-0-0"
    model = ep.sm.describe_model(ModelName=f"{ep.name}-2-0-0")
    assert model["PrimaryContainer"]["Image"] == image and model["ExecutionRoleArn"] == ROLE
    assert "ModelDataUrl" not in model["PrimaryContainer"]  # the image carries the model
    tags = {t["Key"]: t["Value"] for t in ep.sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags["mlship:version"] == "2.0.0" and tags["mlship:name"] == ep.name
    # A new config: green runs the new model, blue is unchanged (its model and its weight).
    after = ep.sm.describe_endpoint(EndpointName=ep.endpoint)
    assert after["EndpointConfigName"] != before and after["EndpointStatus"] == "InService"
    assert ep.variants() == {"blue": (f"{ep.name}-stable", 1.0), "green": (f"{ep.name}-2-0-0", 0.0)}
    config = ep.sm.describe_endpoint_config(EndpointConfigName=after["EndpointConfigName"])
    assert {v["InstanceType"] for v in config["ProductionVariants"]} == {"ml.m5.large"}

    again = ep.cli("deploy", f"{ep.name}:2.0.0", "--slot", "green")  # already there: no new config
    assert again.code == 0 and ep.sm.describe_endpoint(EndpointName=ep.endpoint)["EndpointConfigName"] == \
        after["EndpointConfigName"]
    status = ep.cli("deploy", "status", ep.name).json()["placements"]
    assert {(p["slot"], p["version"], p["current"]) for p in status} >= {("green", "2.0.0", True)}
    shown = ep.cli("versions", "show", f"{ep.name}:2.0.0").json()
    assert [(r["slot"], r["where"], r["digest"]) for r in shown["runs"]] == \
        [("green", f"sagemaker:{ep.endpoint}", image.split("@")[1])]


def test_model_data_in_s3_and_refused_requests(endpoint, s3_server):
    ep = endpoint()
    ep.record("2.0.0")
    bucket = f"models-{ep.name}"
    s3_server.client("s3").create_bucket(Bucket=bucket)
    ep.write(sagemaker=f", model_data: 's3://{bucket}/{{name}}/{{version}}/model.tar.gz', "
                       f"s3_endpoint_url: '{s3_server.endpoint_url}'")
    config = ep.sm.describe_endpoint(EndpointName=ep.endpoint)["EndpointConfigName"]
    missing = ep.cli("deploy", f"{ep.name}:2.0.0", "--slot", "green")
    assert missing.code == 2 and f"no model archive at s3://{bucket}/{ep.name}/2.0.0/model.tar.gz" in missing.stderr
    s3_server.client("s3").put_object(Bucket=bucket, Key=f"{ep.name}/2.0.0/model.tar.gz", Body=b"archive")
    assert ep.cli("deploy", f"{ep.name}:2.0.0", "--slot", "green").code == 0
    model = ep.sm.describe_model(ModelName=f"{ep.name}-2-0-0")
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/{ep.name}/2.0.0/model.tar.gz"

    ep.write()
    no_ecr = ep.cli("deploy", f"{ep.name}:3.0.0", "--slot", "green", "--image", "registry.local:5000/x:1")
    assert no_ecr.code == 2 and "no ECR image" in no_ecr.stderr
    purple = ep.cli("deploy", f"{ep.name}:2.0.0", "--slot", "purple")
    assert purple.code == 2 and "not a production variant" in purple.stderr and "blue, green" in purple.stderr
    stop = ep.cli("deploy", "stop", ep.name, "--slot", "green")
    assert stop.code == 2 and "cannot be stopped" in stop.stderr
    assert ep.variants()["green"][0] == f"{ep.name}-2-0-0"
    assert ep.sm.describe_endpoint(EndpointName=ep.endpoint)["EndpointConfigName"] != config


def test_rollout_start_places_the_candidate_then_the_weights_move_on_it(endpoint):
    ep = endpoint()
    ep.record("2.0.0")
    started = ep.cli("rollout", "start", ep.name, "--candidate", "2.0.0", "--stable", "1.0.0")
    assert started.code == 0, started.stderr
    assert started.json()["message"].startswith(f"deployed 2.0.0 to green on sagemaker:{ep.endpoint}")
    assert ep.variants() == {"blue": (f"{ep.name}-stable", 90.0), "green": (f"{ep.name}-2-0-0", 10.0)}
    assert ep.cli("rollout", "step", ep.name).code == 0
    assert ep.variants() == {"blue": (f"{ep.name}-stable", 50.0), "green": (f"{ep.name}-2-0-0", 50.0)}
    # Green carries traffic now: deploying over it is refused, naming the rollout and its weights.
    ep.record("2.0.1")
    refused = ep.cli("deploy", f"{ep.name}:2.0.1", "--slot", "green")
    assert refused.code == 2 and "routes 50% blue / 50% green" in refused.stderr
    assert ep.cli("rollout", "abort", ep.name).code == 6
    assert ep.variants() == {"blue": (f"{ep.name}-stable", 100.0), "green": (f"{ep.name}-2-0-0", 0.0)}
    events = [json.loads(line) for line in (ep.root / ".mlship" / "versions.jsonl").read_text().splitlines()]
    assert [(e["event"], e["version"], e.get("via")) for e in events if e["event"] == "deploy"] == \
        [("deploy", "2.0.0", "rollout start")]


@pytest.mark.parametrize("green, message", [
    ("1.1.0", "serves 1.1.0 of"),
    (None, "no mlship:version tag) serves no version of"),
])
def test_start_without_a_runtime_refuses_a_variant_whose_model_is_not_the_candidate(endpoint, green, message):
    ep = endpoint(green)
    ep.write(deploy="runtime: null")
    refused = ep.cli("rollout", "start", ep.name, "--candidate", "2.0.0", "--stable", "1.0.0")
    assert refused.code == 2, refused.stderr
    assert f"slot green (SageMaker model {ep.name}-green on endpoint {ep.endpoint}" in refused.stderr
    assert message in refused.stderr and "not the candidate 2.0.0" in refused.stderr
    assert ep.variants()["green"] == (f"{ep.name}-green", 0.0)  # no traffic moved
    assert not (ep.root / ".mlship" / "rollouts" / f"{ep.name}.json").exists()


def test_start_without_a_runtime_accepts_a_variant_running_the_candidate(endpoint):
    ep = endpoint("2.0.0")
    ep.write(deploy="runtime: null")
    assert ep.cli("rollout", "start", ep.name, "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    assert ep.variants()["green"] == (f"{ep.name}-green", 10.0)


def _gated(endpoint, analysis: str):
    ep = endpoint("2.0.0")
    ep.write(deploy="runtime: null", router=f", cloudwatch: {{endpoint_url: '{ep.server.endpoint_url}'}}",
             analysis=analysis)
    (ep.root / "mlship.yaml").write_text((ep.root / "mlship.yaml").read_text().replace(
        f"  logs: [{ep.root / 'logs'}]\n", ""))  # CloudWatch alone: no prediction logs
    assert ep.cli("rollout", "start", ep.name, "--candidate", "2.0.0", "--stable", "1.0.0").code == 0
    return ep


def test_a_sagemaker_gate_fails_on_the_variants_5xx_errors_in_cloudwatch(endpoint):
    ep = _gated(endpoint, "min_requests: 20, max_error_rate: 0.01")
    ep.put_metrics("green", Invocations=40, Invocation5XXErrors=6)
    ep.put_metrics("blue", Invocations=400, Invocation5XXErrors=0)
    step = ep.cli("rollout", "step", ep.name)
    assert step.code == 6, step.stdout + step.stderr
    metrics = {m["name"]: m for m in step.json()["gate"]["metrics"]}
    assert metrics["error_rate"]["result"] == "fail"
    assert metrics["error_rate"]["detail"].startswith("6 of 40 failed") and "CloudWatch" in \
        metrics["error_rate"]["detail"]
    assert ep.variants()["green"][1] == 0.0 and ep.variants()["blue"][1] == 100.0


def test_a_sagemaker_gate_judges_the_variants_model_latency(endpoint):
    ep = _gated(endpoint, "min_requests: 20, max_error_rate: 0.05, max_p99_latency_ms: 50")
    ep.put_metrics("green", Invocations=30, Invocation5XXErrors=0, ModelLatency=12_000)  # 12 ms
    passed = ep.cli("rollout", "step", ep.name)
    assert passed.code == 0, passed.stdout + passed.stderr
    metrics = {m["name"]: m for m in passed.json()["gate"]["metrics"]}
    assert metrics["p99_latency_ms"]["value"] == 12.0 and metrics["requests"]["value"] == 30
    assert ep.variants()["green"][1] == 50.0
    ep.put_metrics("green", Invocations=30, Invocation5XXErrors=0, ModelLatency=250_000)  # 250 ms
    slow = ep.cli("rollout", "step", ep.name)
    assert slow.code == 6, slow.stdout + slow.stderr
    metrics = {m["name"]: m for m in slow.json()["gate"]["metrics"]}
    assert metrics["p99_latency_ms"]["result"] == "fail" and metrics["p99_latency_ms"]["value"] == 250.0


def test_without_metrics_in_the_window_the_gate_waits(endpoint):
    ep = _gated(endpoint, "min_requests: 20")
    step = ep.cli("rollout", "step", ep.name)
    assert step.code == 5, step.stdout + step.stderr  # paused: 0 candidate requests, not passed
    assert ep.variants()["green"][1] == 10.0


def test_a_runtime_without_an_endpoint_or_region_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    config = tmp_path / "mlship.yaml"
    config.write_text(f"name: bc\ndeploy:\n  runtime: sagemaker\n  sagemaker: {{role_arn: '{ROLE}'}}\n")
    result = run("-c", str(config), "deploy", "status", "bc")
    assert result.code == 2 and "deploy.sagemaker.endpoint: no endpoint given" in result.stderr
    config.write_text(f"name: bc\ndeploy:\n  runtime: sagemaker\n  sagemaker: {{role_arn: '{ROLE}', endpoint: e}}\n")
    result = run("-c", str(config), "deploy", "status", "bc")
    assert result.code == 2 and "deploy.sagemaker:" in result.stderr and "region" in result.stderr
