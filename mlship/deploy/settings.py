"""mlship.yaml's `deploy:` section: which runtime places versions, and each runtime's keys.

`runtime:` names an installed plugin of `mlship.runtimes.v1`; a key named after a
runtime (`docker:`, `sagemaker:`) holds that runtime's settings, validated by its
own `Settings`, so errors name paths such as `deploy.docker.restart`. Several
runtimes may be configured side by side; `runtime:` (or `mlship deploy
--runtime`) picks one. The JSON schema lists the installed runtimes' sections.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlship.plugins import PluginSettings, installed, load

GROUP = "runtimes"


class DeployConfig(BaseModel):
    """Where `mlship deploy` (and `rollout start`, when set) runs versions."""

    # Runtime sections are extra keys, checked below by the runtime named by each key.
    model_config = ConfigDict(extra="allow")

    runtime: str | None = Field(None, description="The runtime `mlship deploy` places versions in slots with: an "
                                "installed plugin of mlship.runtimes.v1 (docker, ...).")

    @model_validator(mode="after")
    def _runtime_sections(self) -> "DeployConfig":
        extra = self.__pydantic_extra__ or {}
        names = installed(GROUP)
        for key, value in [("runtime", self.runtime), *((k, k) for k in extra)]:
            if value is not None and value not in names:
                _fail(key, value, f"unknown deploy runtime; installed: {', '.join(names) or 'none'}")
        if extra:
            from pydantic import create_model

            fields: Any = {key: (load(GROUP, key, f"deploy.{key}").Settings, ...) for key in extra}
            # Validated as one model whose fields are the sections: errors carry (key, field, ...),
            # and pydantic puts `deploy` in front, so they read deploy.docker.restart.
            sections = create_model("DeploySections", **fields).model_validate(extra)
            self.__pydantic_extra__ = {key: getattr(sections, key) for key in extra}
        return self

    def settings(self, runtime: str) -> PluginSettings:
        """The settings of `runtime`: its section, or its defaults when mlship.yaml has none."""
        section = (self.__pydantic_extra__ or {}).get(runtime)
        return section if section is not None else load(GROUP, runtime, "deploy.runtime").Settings()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        from pydantic import TypeAdapter

        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        target["additionalProperties"] = False
        for name, plugin in sorted(_installed_plugins().items()):
            section = handler(TypeAdapter(plugin.Settings).core_schema)
            target.setdefault("properties", {})[name] = {
                **section, "description": f"Settings of the {name} runtime (deploy.runtime: {name})."}
        return schema


def _installed_plugins() -> dict[str, type]:
    from mlship.plugins import load_all

    return load_all(GROUP)


def _fail(key: str, value: str, message: str) -> None:
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails, PydanticCustomError

    error = PydanticCustomError("runtime_type", message)
    raise ValidationError.from_exception_data("deploy", [InitErrorDetails(type=error, loc=(key,), input=value)])
