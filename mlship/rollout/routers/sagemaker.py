"""The SageMaker router: production-variant weights of one endpoint.

Weights move with `update_endpoint_weights_and_capacities`; the live state
comes from `describe_endpoint` (waiting until the endpoint is InService).
Shadows go through a shadow production variant (`update_endpoint` with a new
endpoint config that names the candidate in ShadowProductionVariants).
With `cloudwatch:` set, the gate also reads each variant's Invocations,
Invocation5XXErrors and ModelLatency from CloudWatch (AWS/SageMaker), so a
candidate failing requests fails the gate without prediction logs.
Credentials follow boto3's chain.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from mlship.errors import RouterRefusedError, ServiceError, UsageError
from mlship.plugins import PluginSettings
from mlship.rollout.routers import Router, SlotMetrics, check_slots
from mlship.rollout.state import Route

WAIT_S = 1800.0
NAMESPACE = "AWS/SageMaker"


class CloudWatchSettings(PluginSettings):
    """Where the gate reads the endpoint's per-variant metrics."""

    endpoint_url: str | None = Field(None, description="Custom CloudWatch API endpoint (tests, private links).")
    period_s: int = Field(60, ge=1, description="The metrics' period (60 for SageMaker's standard metrics).")


class SageMakerRouter(Router):
    """Production-variant weights of a SageMaker endpoint."""

    name = "sagemaker"
    supports = frozenset({"bluegreen", "canary", "shadow"})

    class Settings(Router.Settings):
        endpoint: str = Field(..., description="SageMaker endpoint name.")
        region: str | None = Field(None, description="AWS region.")
        endpoint_url: str | None = Field(None, description="Custom API endpoint (tests, private links).")
        profile: str | None = Field(None, description="Named profile from the AWS config files.")
        wait_s: float = Field(WAIT_S, gt=0, description="How long to wait for the endpoint to be InService.")
        cloudwatch: CloudWatchSettings | None = Field(None, description="Gate on each variant's Invocations, "
                                                      "Invocation5XXErrors and ModelLatency from CloudWatch.")

    def __init__(self, *, name: str, endpoint: str, region: str | None = None, endpoint_url: str | None = None,
                 profile: str | None = None, wait_s: float = WAIT_S, cloudwatch: dict[str, Any] | None = None,
                 **_: Any) -> None:
        from mlship.extras import require

        boto3 = require("boto3")
        from botocore.config import Config

        self.model, self.endpoint, self.wait_s = name, endpoint, wait_s
        session = boto3.session.Session(profile_name=profile, region_name=region)
        self.client = session.client("sagemaker", endpoint_url=endpoint_url,
                                     config=Config(retries={"max_attempts": 4, "mode": "standard"}))
        self.cloudwatch = CloudWatchSettings.model_validate(cloudwatch) if cloudwatch is not None else None
        self._session = session

    def _describe(self) -> dict[str, Any]:
        try:
            return self.client.describe_endpoint(EndpointName=self.endpoint)
        except Exception as exc:
            raise ServiceError(f"SageMaker endpoint {self.endpoint}: {_reason(exc)}") from None

    def _wait_in_service(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.wait_s
        while True:
            doc = self._describe()
            status = doc.get("EndpointStatus")
            if status == "InService":
                return doc
            if status in ("Failed", "OutOfService", "RollingBack"):
                raise ServiceError(f"SageMaker endpoint {self.endpoint} is {status}: {doc.get('FailureReason', '')}")
            if time.monotonic() > deadline:
                raise ServiceError(f"SageMaker endpoint {self.endpoint} still {status} after {self.wait_s:.0f} s")
            time.sleep(2)

    def _set_shadow(self, doc: dict[str, Any], route: Route, names: list[str]) -> dict[str, Any]:
        """A new endpoint config with the candidate as shadow variant (or back as a production variant)."""
        if route.candidate is None or route.candidate not in names:
            raise UsageError(f"SageMaker endpoint {self.endpoint}: shadow needs the candidate variant")
        try:
            current = self.client.describe_endpoint_config(EndpointConfigName=doc["EndpointConfigName"])
            variants = {v["VariantName"]: v for v in current["ProductionVariants"]
                        + (current.get("ShadowProductionVariants") or [])}
            keep = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType", "ServerlessConfig")
            spec = {n: {k: v[k] for k in keep if k in v} for n, v in variants.items()}
            production = [{**spec[route.stable], "InitialVariantWeight": 1.0}]
            shadow = [{**spec[route.candidate], "InitialVariantWeight": 1.0}] if route.mirror else []
            if not route.mirror:
                production.append({**spec[route.candidate], "InitialVariantWeight": 0.0})
            config_name = f"{self.endpoint}-mlship-{int(time.time() * 1000)}"[-63:]
            extra = {"ShadowProductionVariants": shadow} if shadow else {}
            self.client.create_endpoint_config(EndpointConfigName=config_name, ProductionVariants=production, **extra)
            self.client.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=config_name)
        except Exception as exc:
            raise RouterRefusedError(f"SageMaker endpoint {self.endpoint}: cannot "
                                     f"{'add' if route.mirror else 'remove'} the shadow variant: {_reason(exc)}") from None
        return self._wait_in_service()

    def slots(self) -> list[str]:
        return [v["VariantName"] for v in self._describe().get("ProductionVariants", [])]

    def live(self) -> Route | None:
        doc = self._wait_in_service()
        variants = {v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0)))
                    for v in doc.get("ProductionVariants", [])}
        shadows = [v["VariantName"] for v in doc.get("ShadowProductionVariants", []) or []]
        if len(variants) + len(shadows) != 2:
            raise UsageError(f"SageMaker endpoint {self.endpoint} has {len(variants) + len(shadows)} variants",
                             hint="mlship rolls out between exactly two production variants")
        if shadows:
            return Route(stable=next(iter(variants)), candidate=shadows[0], weight=0, mirror=True)
        total = sum(variants.values()) or 1.0
        (a, wa), (b, wb) = sorted(variants.items(), key=lambda kv: -kv[1])
        if wb == 0:
            return Route(stable=a)
        return Route(stable=a, candidate=b, weight=round(100 * wb / total, 2))

    def serves(self, slot: str) -> tuple[str, list[str]] | None:
        """The version the variant's model carries (its `mlship:version` tag, set by the sagemaker runtime)."""
        try:
            doc = self.client.describe_endpoint(EndpointName=self.endpoint)
            config = self.client.describe_endpoint_config(EndpointConfigName=doc["EndpointConfigName"])
            variant = next((v for v in config["ProductionVariants"] if v["VariantName"] == slot), None)
            if variant is None:
                return None
            model = self.client.describe_model(ModelName=variant["ModelName"])
            tags = self.client.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
        except Exception as exc:
            raise ServiceError(f"SageMaker endpoint {self.endpoint}: reading variant {slot}'s model: "
                               f"{_reason(exc)}") from None
        version = next((t["Value"] for t in tags if t["Key"] == "mlship:version"), None)
        where = f"SageMaker model {variant['ModelName']} on endpoint {self.endpoint}" + \
            ("" if version else ", no mlship:version tag")
        return where, [version] if version else []

    def observed(self, slot: str, since: float, until: float) -> SlotMetrics | None:
        """The variant's Invocations, Invocation5XXErrors and ModelLatency (p99, or the maximum where
        CloudWatch has no percentiles for it) in [since, until), when `cloudwatch:` is set."""
        if self.cloudwatch is None:
            return None
        from datetime import datetime, timezone

        cw = self._session.client("cloudwatch", endpoint_url=self.cloudwatch.endpoint_url)
        period = self.cloudwatch.period_s
        query = {"Namespace": NAMESPACE, "Dimensions": [{"Name": "EndpointName", "Value": self.endpoint},
                                                         {"Name": "VariantName", "Value": slot}],
                 "StartTime": datetime.fromtimestamp(since, timezone.utc),
                 "EndTime": datetime.fromtimestamp(max(until, since + 1), timezone.utc),
                 "Period": period * max(1, -(-int(until - since) // period))}

        def points(metric: str, **stats: Any) -> list[dict[str, Any]]:
            try:
                return cw.get_metric_statistics(MetricName=metric, **query, **stats)["Datapoints"]
            except Exception as exc:
                raise ServiceError(f"CloudWatch {NAMESPACE} {metric} of {self.endpoint}/{slot}: "
                                   f"{_reason(exc)}") from None

        requests = sum(p.get("Sum", 0) for p in points("Invocations", Statistics=["Sum"]))
        errors = sum(p.get("Sum", 0) for p in points("Invocation5XXErrors", Statistics=["Sum"]))
        latency = [p["ExtendedStatistics"]["p99"] for p in points("ModelLatency", ExtendedStatistics=["p99"])
                   if "p99" in p.get("ExtendedStatistics", {})]
        if not latency:
            latency = [p["Maximum"] for p in points("ModelLatency", Statistics=["Maximum"]) if "Maximum" in p]
        return SlotMetrics(source=f"CloudWatch {self.endpoint}/{slot}", requests=int(requests), errors=int(errors),
                           p99_latency_ms=max(latency) / 1000.0 if latency else None)  # ModelLatency is in µs

    def apply(self, route: Route) -> None:
        doc = self._wait_in_service()
        names = [v["VariantName"] for v in doc.get("ProductionVariants", [])]
        shadows = [v["VariantName"] for v in doc.get("ShadowProductionVariants", []) or []]
        check_slots(route, names + shadows, f"the variants of SageMaker endpoint {self.endpoint}")
        if route.mirror or shadows:
            doc = self._set_shadow(doc, route, names + shadows)
            names = [v["VariantName"] for v in doc.get("ProductionVariants", [])]
            if route.mirror:
                return
        weight = route.weight if route.candidate else 0
        weights = {n: 0.0 for n in names}
        weights[route.stable] = 100.0 - weight
        if route.candidate:
            weights[route.candidate] = float(weight)
        try:
            self.client.update_endpoint_weights_and_capacities(
                EndpointName=self.endpoint,
                DesiredWeightsAndCapacities=[{"VariantName": n, "DesiredWeight": w} for n, w in weights.items()])
        except Exception as exc:
            raise RouterRefusedError(f"SageMaker endpoint {self.endpoint}: cannot set weights: {_reason(exc)}") from None
        live = self.live()
        if not route.same_as(live):
            raise ServiceError(f"SageMaker endpoint {self.endpoint} reports {live.describe() if live else 'nothing'} "
                               f"after setting {route.describe()}")


def _reason(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    return f"{code}: {first}" if code and code not in first else first
