"""What every Polyaxon model here shares: frozen, camelCase aliases, unknown keys rejected or refused."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import PydanticCustomError

# The pydantic error type that marks a key Polyaxon knows but the bridge does not run. `problems.py` turns it
# into a NotSupported error instead of a plain validation problem.
NOT_SUPPORTED = "bridge_not_supported"
# The error type of a model-level check about one of its keys: `problems.py` appends the key to the path.
AT_KEY = "bridge_at_key"


def error_at(key: str, message: str) -> PydanticCustomError:
    """A validation error reported at `<model path>.<key>` (pydantic puts model-level errors on the model)."""
    return PydanticCustomError(AT_KEY, "{message}", {"key": key, "message": message})


class PolyaxonModel(BaseModel):
    """Base of every polyaxonfile model.

    Subclasses list Polyaxon keys they accept and drop (`_ignored`, harmless here, e.g. `queue`) and keys they
    refuse by name (`_not_supported`, they would change what runs, e.g. `hooks`). Anything else unknown is
    "Extra inputs are not permitted", as in Polyaxon.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    _ignored: ClassVar[frozenset[str]] = frozenset()
    _not_supported: ClassVar[frozenset[str]] = frozenset()
    # Why an ignored key of this model is ignored, for its warning (the default suits Kubernetes' and the
    # Polyaxon server's settings).
    _ignored_reason: ClassVar[str] = "it only matters on Kubernetes or a Polyaxon server"

    # The ignored keys this instance was given with a value: each becomes a warning (see `dropped_keys`).
    _dropped: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _drop_ignored_refuse_unsupported(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, Mapping):
            return handler(data)
        # An empty or false value (`hooks: []`, `isPreset: false`) asks for nothing, so it is dropped quietly.
        refused = sorted(str(k) for k in data if k in cls._not_supported and data[k])
        if refused:
            raise PydanticCustomError(
                NOT_SUPPORTED,
                "{keys} is not supported by the bridge",
                {"keys": ", ".join(f"`{k}`" for k in refused), "key": refused[0]},
            )
        dropped = tuple(str(k) for k in data if k in cls._ignored and data[k] not in (None, False, "", [], {}))
        model = handler({k: v for k, v in data.items() if k not in cls._ignored and k not in cls._not_supported})
        if dropped and isinstance(model, PolyaxonModel):
            model._dropped = dropped
        return model


def dropped_keys(model: BaseModel, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ignored key given a value anywhere under `model`: (its path, why it is ignored)."""
    if isinstance(model, PolyaxonModel):
        for key in model._dropped:
            yield (f"{path}.{key}" if path else key), model._ignored_reason
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        value = getattr(model, name)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for index, item in items:
            if isinstance(item, BaseModel):
                where = f"{path}.{key}" if path else key
                yield from dropped_keys(item, where if index is None else f"{where}[{index}]")


def split_str_list(value: Any) -> Any:
    """Polyaxon accepts `tags: a, b` as well as a YAML list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
