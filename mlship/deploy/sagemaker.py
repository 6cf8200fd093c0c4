"""The sagemaker runtime: a slot is a production variant of one SageMaker endpoint.

Deploying NAME:VERSION into a slot creates the SageMaker model `NAME-VERSION` from the
version's ECR image (with its model archive in S3 when `model_data` says where: an image
that does not carry the model), then a new endpoint config in which the slot's variant
runs that model and the other variant is unchanged (same model, instances and current
weight), then `update_endpoint`, waiting for InService with boto3's waiter. SageMaker
rolls a failed update back itself: the slot keeps serving its previous model. Replaced
models are kept (for `rollout undo`) until `mlship deploy gc` deletes them.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import Field

from mlship.deploy.base import DeployError, Placement, Runtime
from mlship.errors import ServiceError, UsageError

TAG = "mlship:"
WAIT_S = 1800.0
POLL_S = 15.0


class SageMakerRuntime(Runtime):
    """Production variants of a SageMaker endpoint, one model per version."""

    name = "sagemaker"

    class Settings(Runtime.Settings):
        endpoint: str | None = Field(None, description="SageMaker endpoint whose production variants are the "
                                     "slots [rollout.router.endpoint].")
        region: str | None = Field(None, description="AWS region [rollout.router.region].")
        endpoint_url: str | None = Field(None, description="Custom SageMaker API endpoint (tests, private links) "
                                         "[rollout.router.endpoint_url].")
        profile: str | None = Field(None, description="Named profile from the AWS config files [rollout.router.profile].")
        role_arn: str = Field(..., description="IAM role SageMaker runs the models with (ExecutionRoleArn).")
        model_data: str | None = Field(None, description="S3 URL of the model archive when the image does not carry "
                                       "the model; {name} and {version} are replaced, e.g. "
                                       "s3://models/{name}/{version}/model.tar.gz.")
        s3_endpoint_url: str | None = Field(None, description="Custom S3 endpoint for checking model_data "
                                            "[endpoint_url].")
        env: dict[str, str] = Field(default_factory=dict, description="Environment of the model's container.")
        wait_s: float = Field(WAIT_S, gt=0, description="How long the endpoint may take to be InService.")
        poll_s: float = Field(POLL_S, gt=0, description="How often the waiter asks (boto3 waiter delay).")

    def __init__(self, *, name: str, slots: dict[str, str | None], router: dict[str, Any] | None = None,
                 **settings: Any) -> None:
        from mlship.extras import require

        boto3 = require("boto3")
        from botocore.config import Config

        inherited = {k: v for k, v in (router or {}).items() if k in ("endpoint", "region", "endpoint_url", "profile")
                     and (router or {}).get("type") == "sagemaker" and settings.get(k) is None}
        self.settings = self.Settings.model_validate({**settings, **inherited})
        if not self.settings.endpoint:
            raise UsageError("deploy.sagemaker.endpoint: no endpoint given",
                             hint="Set it, or use a sagemaker rollout.router whose endpoint it takes")
        self.model, self.endpoint = name, self.settings.endpoint
        from botocore.exceptions import BotoCoreError

        try:
            session = boto3.session.Session(profile_name=self.settings.profile, region_name=self.settings.region)
            self.client = session.client("sagemaker", endpoint_url=self.settings.endpoint_url,
                                         config=Config(retries={"max_attempts": 4, "mode": "standard"}))
        except BotoCoreError as exc:  # no region, an unknown profile
            raise UsageError(f"deploy.sagemaker: {exc}", hint="Set deploy.sagemaker.region and profile (or "
                             "AWS_DEFAULT_REGION, AWS_PROFILE)") from None
        self._session = session

    # -- the interface ---------------------------------------------------------

    def where(self) -> str:
        return f"sagemaker:{self.endpoint}"

    def deploy(self, slot: str, version: str, images: list[str]) -> Placement:
        image = _ecr_image(images, self.model, version)
        model = self._ensure_model(version, image)
        return self._point(slot, model)

    def placements(self) -> list[Placement]:
        running = self._variants()
        current = {v["ModelName"]: v["VariantName"] for v in running}
        out = [self._placement(self._describe_model(m), slot, True, "InService") for m, slot in current.items()]
        for summary in self._call(lambda: self.client.list_models(NameContains=_model_prefix(self.model),
                                                                  SortBy="CreationTime", SortOrder="Descending"),
                                  "listing models")["Models"]:
            if summary["ModelName"] in current:
                continue
            doc = self._describe_model(summary["ModelName"])
            tags = self._tags(doc["ModelArn"])
            if tags.get("name") == self.model:
                out.append(self._placement(doc, tags.get("slot", ""), False, "kept"))
        return out

    def stop(self, slot: str) -> Placement | None:
        raise UsageError(f"a production variant of SageMaker endpoint {self.endpoint} cannot be stopped",
                         hint="Move its traffic away (mlship rollout), or deploy another version into it")

    def restore(self, slot: str, version: str) -> Placement:
        model = _model_name(self.model, version)
        if self._describe_model(model, missing_ok=True) is None:
            raise UsageError(f"no SageMaker model {model} is kept for slot {slot}",
                             hint="Deploy it again: mlship deploy NAME:VERSION --slot SLOT")
        return self._point(slot, model)

    def remove(self, placement: Placement) -> None:
        if placement.current:
            raise UsageError(f"{placement.id} runs in variant {placement.slot} of {self.endpoint}")
        self._call(lambda: self.client.delete_model(ModelName=placement.id), f"deleting model {placement.id}")

    # -- steps -----------------------------------------------------------------

    def _ensure_model(self, version: str, image: str) -> str:
        """The model NAME-VERSION running `image` (created, or the one made by an earlier deploy)."""
        model = _model_name(self.model, version)
        container: dict[str, Any] = {"Image": image, "Environment": dict(self.settings.env)}
        if self.settings.model_data:
            container["ModelDataUrl"] = self._model_data(version)
        known = self._describe_model(model, missing_ok=True)
        if known is not None:
            if known.get("PrimaryContainer", {}).get("Image") != image:
                raise UsageError(f"SageMaker model {model} runs {known['PrimaryContainer'].get('Image')}, not {image}",
                                 hint="Versions are immutable: bump the version, or delete the model")
            return model
        tags = [{"Key": TAG + key, "Value": value} for key, value in
                (("name", self.model), ("version", version), ("image", image[:256]))]
        self._call(lambda: self.client.create_model(ModelName=model, PrimaryContainer=container,
                                                    ExecutionRoleArn=self.settings.role_arn, Tags=tags),
                   f"creating model {model}")
        return model

    def _point(self, slot: str, model: str) -> Placement:
        """Variant `slot` runs `model`, the other variant as it was; waits for InService and checks it."""
        endpoint = self._endpoint()
        names = [v["VariantName"] for v in endpoint.get("ProductionVariants", [])]
        if slot not in names:
            raise UsageError(f"slot '{slot}' is not a production variant of SageMaker endpoint {self.endpoint} "
                             f"({', '.join(names) or 'none'})")
        config = self._call(lambda: self.client.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]), "reading the endpoint config")
        variants = config["ProductionVariants"]
        if next(v for v in variants if v["VariantName"] == slot)["ModelName"] != model:
            # The weights users see now (a rollout may have moved them since the config was made).
            weights = {v["VariantName"]: v.get("CurrentWeight", v.get("DesiredWeight", 0.0)) for v in
                       endpoint["ProductionVariants"]}
            new = [{**_spec(v), "InitialVariantWeight": float(weights.get(v["VariantName"], 0.0)),
                    **({"ModelName": model} if v["VariantName"] == slot else {})} for v in variants]
            name = _config_name(self.endpoint, slot)
            self._call(lambda: self.client.create_endpoint_config(EndpointConfigName=name, ProductionVariants=new),
                       f"creating endpoint config {name}")
            self._call(lambda: self.client.update_endpoint(EndpointName=self.endpoint, EndpointConfigName=name),
                       f"updating endpoint {self.endpoint}")
        self._wait()
        serving = {v["VariantName"]: v["ModelName"] for v in self._variants()}
        if serving.get(slot) != model:
            raise DeployError(f"variant {slot} of SageMaker endpoint {self.endpoint} runs {serving.get(slot)}, "
                              f"not {model}", hint="SageMaker rolled the update back; see the endpoint's events")
        return self._placement(self._describe_model(model), slot, True, "InService")

    def _wait(self) -> None:
        """InService within wait_s (boto3's waiter); DeployError naming SageMaker's reason otherwise."""
        from botocore.exceptions import WaiterError

        waiter = self.client.get_waiter("endpoint_in_service")
        attempts = max(1, int(self.settings.wait_s // self.settings.poll_s) + 1)
        try:
            waiter.wait(EndpointName=self.endpoint,
                        WaiterConfig={"Delay": self.settings.poll_s, "MaxAttempts": attempts})
        except WaiterError as exc:
            last = getattr(exc, "last_response", None) or {}
            status = last.get("EndpointStatus", "not InService")
            reason = last.get("FailureReason") or f"still {status} after {self.settings.wait_s:.0f} s"
            raise DeployError(f"SageMaker endpoint {self.endpoint}: {reason}",
                              hint="SageMaker keeps the previous config when an update fails") from None

    def _model_data(self, version: str) -> str:
        """The model archive's S3 URL; UsageError when nothing is there (push it first)."""
        url = self.settings.model_data.replace("{name}", self.model).replace("{version}", version)
        match = re.fullmatch(r"s3://([^/]+)/(.+)", url)
        if not match:
            raise UsageError(f"deploy.sagemaker.model_data: {url!r} is not s3://BUCKET/KEY")
        s3 = self._session.client("s3", endpoint_url=self.settings.s3_endpoint_url or self.settings.endpoint_url)
        try:
            s3.head_object(Bucket=match.group(1), Key=match.group(2))
        except Exception as exc:  # botocore ClientError (404, 403), connection errors
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise UsageError(f"no model archive at {url}", hint="Upload it first (mlship push), or fix "
                                 "deploy.sagemaker.model_data") from None
            raise ServiceError(f"S3 at {url}: {_reason(exc)}") from None
        return url

    # -- plumbing --------------------------------------------------------------

    def _endpoint(self) -> dict[str, Any]:
        return self._call(lambda: self.client.describe_endpoint(EndpointName=self.endpoint),
                          f"reading endpoint {self.endpoint}")

    def _variants(self) -> list[dict[str, Any]]:
        """The production variants of the endpoint's current config (VariantName, ModelName, ...)."""
        config = self._endpoint()["EndpointConfigName"]
        return self._call(lambda: self.client.describe_endpoint_config(EndpointConfigName=config),
                          "reading the endpoint config")["ProductionVariants"]

    def _describe_model(self, model: str, missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            return self.client.describe_model(ModelName=model)
        except Exception as exc:  # botocore ClientError: ValidationException for a missing model
            if missing_ok and "ValidationException" in _reason(exc):
                return None
            raise ServiceError(f"SageMaker model {model}: {_reason(exc)}") from None

    def _tags(self, arn: str) -> dict[str, str]:
        tags = self._call(lambda: self.client.list_tags(ResourceArn=arn), "reading tags").get("Tags", [])
        return {t["Key"][len(TAG):]: t["Value"] for t in tags if t["Key"].startswith(TAG)}

    def _placement(self, doc: dict[str, Any], slot: str, current: bool, state: str) -> Placement:
        tags = self._tags(doc["ModelArn"])
        image = doc.get("PrimaryContainer", {}).get("Image", "")
        created = doc.get("CreationTime")
        return Placement(slot=slot or tags.get("slot", ""), version=tags.get("version", ""), image=image,
                         digest=image.partition("@")[2] or None, state=state, current=current,
                         id=doc["ModelName"], created=created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else "",
                         address=f"{self.endpoint}/{slot}" if current else None)

    def _call(self, action: Any, doing: str) -> Any:
        try:
            return action()
        except (UsageError, ServiceError):
            raise
        except Exception as exc:  # botocore ClientError, connection errors
            raise ServiceError(f"SageMaker endpoint {self.endpoint}: {doing}: {_reason(exc)}") from None


def _ecr_image(images: list[str], name: str, version: str) -> str:
    """The first ECR reference among `images` (SageMaker runs images from ECR only)."""
    from mlship.registry.push import ECR_HOST

    for ref in images:
        if ECR_HOST.match(ref.split("/", 1)[0].split(":")[0]) and "/" in ref:
            return ref
    raise UsageError(f"no ECR image of {name}:{version} is recorded ({', '.join(images) or 'none'})",
                     hint="Push it to ECR (mlship push --image ecr://...), or pass --image ACCOUNT.dkr.ecr.REGION."
                          "amazonaws.com/REPO@DIGEST")


def _model_prefix(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", name)


def _model_name(name: str, version: str) -> str:
    """NAME-VERSION as SageMaker allows model names ([a-zA-Z0-9-], at most 63)."""
    return f"{_model_prefix(name)}-{re.sub(r'[^A-Za-z0-9-]', '-', version)}"[:63].strip("-")


def _config_name(endpoint: str, slot: str) -> str:
    stamp = str(int(time.time() * 1000))
    return f"{endpoint[:63 - len(stamp) - len(slot) - 2]}-{slot}-{stamp}".replace("_", "-")


def _spec(variant: dict[str, Any]) -> dict[str, Any]:
    """What a production variant is made of, without its weight."""
    keep = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType", "ServerlessConfig",
            "AcceleratorType", "VolumeSizeInGB", "ModelDataDownloadTimeoutInSeconds",
            "ContainerStartupHealthCheckTimeoutInSeconds")
    return {k: variant[k] for k in keep if k in variant}


def _reason(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    return f"{code}: {first}" if code and code not in first else first
