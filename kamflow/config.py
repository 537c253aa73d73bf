"""Load the YAML configuration in ``conf/`` (or ``$KAMFLOW_CONF``) into typed objects.

Each loader names the file and the key in its error, so a bad value is refused with a message an
operator can act on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from expectations import ValidationPolicy
from kamflow.errors import ConfigError
from kamflow.settings import DEFAULT_CONF_DIR
from scoring import ScoringConfig
from worklist import Owner, OwnerDirectory


def conf_dir() -> Path:
    return Path(os.environ.get("KAMFLOW_CONF") or DEFAULT_CONF_DIR)


def read_yaml(path: Path) -> Mapping[str, Any]:
    if not path.exists():
        raise ConfigError(f"configuration file {path} is missing")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"configuration file {path} must be a mapping of keys to values")
    return doc


def load_scoring(path: Path | None = None) -> ScoringConfig:
    path = path or conf_dir() / "scoring.yaml"
    return ScoringConfig.from_mapping(read_yaml(path), source=str(path))


def load_owners(path: Path | None = None) -> OwnerDirectory:
    path = path or conf_dir() / "owners.yaml"
    doc = read_yaml(path)

    def owner(spec: Any, key: str) -> Owner:
        if not isinstance(spec, Mapping) or not spec.get("email") or not spec.get("name"):
            raise ConfigError(f"{path}: key {key!r} needs a name and an email")
        language = spec.get("language", "en")
        if language not in ("en", "zh-CN"):
            raise ConfigError(f"{path}: key '{key}.language' must be en or zh-CN, not {language!r}")
        return Owner(str(spec["name"]), str(spec["email"]), language)

    unknown = sorted(set(doc) - {"manager_language", "roles", "fallback"}, key=str)
    if unknown:
        raise ConfigError(f"{path}: key {unknown[0]!r} is unknown; allowed: manager_language, "
                          "roles, fallback")
    roles = doc.get("roles") or {}
    if not isinstance(roles, Mapping):
        raise ConfigError(f"{path}: key 'roles' must map role names to owners")
    manager_language = doc.get("manager_language", "zh-CN")
    if manager_language not in ("en", "zh-CN"):
        raise ConfigError(f"{path}: key 'manager_language' must be en or zh-CN, "
                          f"not {manager_language!r}")
    return OwnerDirectory({role: owner(spec, f"roles.{role}") for role, spec in roles.items()},
                          owner(doc.get("fallback"), "fallback"), manager_language)


@dataclass(frozen=True)
class PipelineConfig:
    validation: ValidationPolicy


def load_pipeline(path: Path | None = None) -> PipelineConfig:
    path = path or conf_dir() / "pipeline.yaml"
    doc = read_yaml(path)
    unknown = sorted(set(doc) - {"validation"}, key=str)
    if unknown:
        raise ConfigError(f"{path}: key {unknown[0]!r} is unknown; allowed: validation")
    validation = doc.get("validation") or {}
    if not isinstance(validation, Mapping):
        raise ConfigError(f"{path}: key 'validation' must be a mapping, not {validation!r}")
    share = validation.get("max_quarantine_share", 0.2)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ConfigError(f"{path}: key 'validation.max_quarantine_share' must be a number "
                          f"between 0 and 1, not {share!r}")
    unknown = sorted(set(validation) - {"max_quarantine_share"})
    if unknown:
        raise ConfigError(f"{path}: key 'validation.{unknown[0]}' is unknown")
    return PipelineConfig(ValidationPolicy(float(share)))
