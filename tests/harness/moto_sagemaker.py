"""UpdateEndpoint for moto's SageMaker, which moto 5.2.5 (the newest on PyPI) does not implement.

moto answers `update_endpoint` with a 500 (NotImplementedError), so nothing could deploy a
new model into a variant of an endpoint on it. The harness adds the action to the
in-process server as AWS documents it for production variants: the endpoint takes the
new config (its variants, their instances and initial weights) and is InService (moto
has no Updating phase). moto drops ShadowProductionVariants from endpoint configs, so
updating to a config made with them stays unemulated (500, as before), which the
SageMaker router's shadow test relies on.
"""

from __future__ import annotations

from typing import Any


def add_update_endpoint() -> None:
    """Give moto's SageMaker responses an `update_endpoint` action (once)."""
    from moto.core.responses import ActionResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    if getattr(SageMakerResponse, "_mlship_update_endpoint", False):
        return
    with_shadows: set[str] = set()  # configs created with shadow variants, which moto drops
    create_config = SageMakerResponse.create_endpoint_config

    def create_endpoint_config(self: Any) -> Any:
        if self._get_param("ShadowProductionVariants"):
            with_shadows.add(self._get_param("EndpointConfigName"))
        return create_config(self)

    def update_endpoint(self: Any) -> Any:
        backend = self.sagemaker_backend
        name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint \"{name}\".")
        config = backend.describe_endpoint_config(config_name)  # ValidationError when missing
        if config_name in with_shadows:
            raise NotImplementedError("update_endpoint with shadow variants is not emulated")
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
        endpoint.endpoint_status = "InService"
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerResponse.create_endpoint_config = create_endpoint_config
    SageMakerResponse.update_endpoint = update_endpoint
    SageMakerResponse._mlship_update_endpoint = True
