"""One loader over the plugin entry-point groups.

Targets, routers, image builders and deploy runtimes are classes registered in
the entry-point groups below; mlship's own are declared in pyproject.toml the
way a third party declares theirs, so there is no built-in table to bypass.
A plugin class has a `name` (its entry-point name: a `type:` or URL scheme)
and a pydantic `Settings` model, which validates its section of mlship.yaml.
Plugins are imported only when one is asked for, so `mlship --help` stays fast.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict

from mlship.errors import UsageError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

# interface -> (entry-point group, what one plugin is called in messages)
GROUPS: dict[str, tuple[str, str]] = {
    "targets": ("mlship.targets.v1", "target scheme"),
    "routers": ("mlship.routers.v1", "router type"),
    "builders": ("mlship.builders.v1", "image builder"),
    "runtimes": ("mlship.runtimes.v1", "deploy runtime"),
}


class PluginSettings(BaseModel):
    """Base of every plugin's Settings: unknown keys are errors, so a typo names its path."""

    model_config = ConfigDict(extra="forbid")


@lru_cache(maxsize=None)
def _entries(group: str) -> dict[str, EntryPoint]:
    """Name -> entry point of `group`. mlship's own come first, so a plugin cannot take over a
    built-in name (`s3`, `nginx`) by registering it again."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=GROUPS[group][0]), key=lambda e: (e.dist is None or e.dist.name != "mlship"))
    entries: dict[str, EntryPoint] = {}
    for entry in found:
        entries.setdefault(entry.name, entry)
    return entries


def installed(group: str) -> list[str]:
    """The names installed in `group` ("targets", "routers", "builders", "runtimes"), sorted, nothing imported."""
    return sorted(_entries(group))


def _one_of(names: list[str]) -> str:
    return f"Use one of {', '.join(names)}" if names else "No plugin of this kind is installed"


def load(group: str, name: str, where: str, suggest: Callable[[list[str]], str] = _one_of) -> type:
    """The class installed as `name` in `group`.

    A name no installed plugin provides is a usage error (exit 2) naming the installed ones
    (`suggest` words the hint); a plugin whose optional dependency is missing says what to install.
    """
    entry = _entries(group).get(name)
    if entry is None:
        raise UsageError(f"{where}: unknown {GROUPS[group][1]} '{name}'", hint=suggest(installed(group)))
    try:
        return entry.load()
    except ImportError as exc:
        from mlship.errors import MissingExtraError
        from mlship.extras import EXTRAS, require

        top = (exc.name or entry.module).split(".")[0]
        if top in EXTRAS:
            require(top)  # mlship's own extras: the same hint as everywhere (pip install 'mlship[aws]')
        package = entry.dist.name if entry.dist else entry.module
        raise MissingExtraError(f"{where}: the {GROUPS[group][1]} '{name}' needs the Python package '{top}', "
                                f"which is not installed", hint=f"Install the dependencies of {package}") from exc


def load_all(group: str) -> dict[str, type]:
    """Name -> class of every plugin installed in `group` (each one imported)."""
    return {name: load(group, name, group) for name in installed(group)}


# -- config sections -------------------------------------------------------------
# mlship.yaml names a plugin by `type:` beside that plugin's own keys. The section is
# validated by the plugin's Settings plus a `type` field (so errors name paths such as
# targets.cloud.region and `config show` prints `type` first); the JSON schema is a
# union over the installed plugins, assembled when the schema is asked for.


class _Typed(BaseModel):
    type: str


@lru_cache(maxsize=None)
def section_model(plugin: type) -> type[PluginSettings]:
    """`plugin.Settings` plus its `type:`, the model of its section in mlship.yaml."""
    from typing import Literal

    from pydantic import create_model

    # Settings first in the bases puts `type` first in the fields: _Typed comes last in the MRO.
    return create_model(plugin.__name__, __base__=(plugin.Settings, _Typed), __module__=plugin.__module__,
                        __doc__=plugin.__doc__, type=(Literal[plugin.name], plugin.name))


def _validate_section(group: str, value: Any) -> Any:
    from pydantic import ValidationError
    from pydantic_core import InitErrorDetails, PydanticCustomError

    noun = GROUPS[group][1].split()[0]
    if isinstance(value, PluginSettings):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping: `type:` and the {noun}'s keys")
    kind, names = value.get("type"), installed(group)
    if kind not in names:
        what = f"name the {noun} type" if kind is None else f"unknown {noun} type"
        error = PydanticCustomError("plugin_type", f"{what}; installed: {', '.join(names) or 'none'}")
        raise ValidationError.from_exception_data(group, [InitErrorDetails(type=error, loc=("type",), input=kind)])
    return section_model(load(group, kind, group)).model_validate(value)


class _SectionSchema:
    """The JSON schema of a section: one of the installed plugins' models, chosen by `type`."""

    group: ClassVar[str]

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        from typing import Annotated, Union

        from pydantic import Field, TypeAdapter

        models = tuple(section_model(plugin) for plugin in load_all(cls.group).values())
        if not models:
            return {"type": "object"}
        union = Annotated[Union[models], Field(discriminator="type")]  # type: ignore[valid-type]
        return handler(TypeAdapter(union).core_schema)


def plugin_section(group: str) -> Any:
    """The annotated type of one plugin section of mlship.yaml (`type:` and the plugin's keys)."""
    from typing import Annotated

    from pydantic import BeforeValidator, SerializeAsAny

    schema = type(f"{group.title()}Schema", (_SectionSchema,), {"group": group})
    return Annotated[SerializeAsAny[PluginSettings], BeforeValidator(lambda v: _validate_section(group, v)), schema]
