"""The parsing layer of the YAML configuration: strict pydantic models, and one function that
turns their ValidationError into the one-paragraph ConfigError an operator reads.

The models only check and parse; each loader converts them into the domain objects the stages
use (OwnerDirectory, BusinessCalendar, ScoringConfig, ValidationPolicy).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from kamflow.core.errors import ConfigError

__all__ = ["ConfigModel", "config_error", "key_path"]


class ConfigModel(BaseModel):
    """A section of a configuration file: unknown keys refused, nothing coerced (``"0.15"``
    and ``true`` are not numbers, ``NaN`` neither), immutable once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # `key:` with nothing after it reads as None in YAML: it keeps the default, as before.
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None}
        return data


def key_path(loc: Sequence[int | str]) -> str:
    """``("roles", "sla_team", "email")`` -> ``roles.sla_team.email``; list positions in
    brackets (``backtest.top_k[0]``); pydantic's ``[key]`` marker (a bad mapping key) dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def config_error(source: object, error: ValidationError, model: type[BaseModel],
                 prefix: str = "") -> ConfigError:
    """The first problem of ``error`` as ``<file>: key '<path>' ...``: what the key is and what
    is wrong with it, never a pydantic traceback. ``prefix`` goes before the key path (a model
    validated for one part of a file)."""
    problem = error.errors(include_url=False)[0]
    loc = problem["loc"]
    key = key_path(loc)
    if prefix:
        key = prefix if key == "(top level)" else f"{prefix}.{key}"
    kind = problem["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return ConfigError(f"{source}: key '{key}' is unknown"
                           + (f"; allowed: {', '.join(allowed)}" if allowed else ""))
    if kind == "missing":
        return ConfigError(f"{source}: key '{key}' is required")
    if kind in ("value_error", "assertion_error"):
        reason = str(problem.get("ctx", {}).get("error", problem["msg"]))
    else:
        reason = {"model_type": "must be a mapping of keys to values",
                  "dict_type": "must be a mapping of names to values",
                  "list_type": "must be a list"}.get(kind, problem["msg"])
        reason = f"{reason[:1].lower()}{reason[1:]}, not {_short(problem['input'])}"
    return ConfigError(f"{source}: key '{key}': {reason}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys the model allows at ``loc`` (following fields, mapping values and list items),
    to list them next to an unknown key; [] where that cannot be told."""
    node: Any = model
    parts = list(loc)
    while parts:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(parts.pop(0)))
            if field is None:
                return []
            node = field.annotation
            continue
        origin, args = typing.get_origin(node), typing.get_args(node)
        if origin in (typing.Union, types.UnionType):
            node = next((a for a in args if a is not type(None)), None)
        elif origin in (dict, Mapping) and len(args) == 2:
            parts.pop(0)
            node = args[1]
        elif origin in (list, tuple, Sequence) and args:
            parts.pop(0)
            node = args[0]
        elif origin is typing.Annotated:
            node = args[0]
        else:
            return []
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return []
