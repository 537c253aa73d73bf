"""SendGrid's mail-send contract for the tests: the project's own (tests/contracts, always there)
and SendGrid's official extract (../shared/contracts, only beside the project's own checkout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CONTRACT = HERE / "contracts" / "sendgrid-mail-send.openapi.yaml"
OFFICIAL = HERE.parents[1] / "shared" / "contracts" / "sendgrid-mail-send.openapi.json"
_REQUEST_SCHEMA = "/paths/~1v3~1mail~1send/post/requestBody/content/application~1json/schema"


def load(path: Path) -> dict[str, Any]:
    """An OpenAPI document, YAML or JSON."""
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def request_validator(path: Path = CONTRACT) -> Any:
    """A JSON Schema (2020-12) validator of the POST /v3/mail/send request body of `path`, with
    format checks (email addresses) on."""
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    uri = f"urn:kamflow:contract:{path.name}"
    registry = Registry().with_resource(uri, DRAFT202012.create_resource(load(path)))
    validator_class = jsonschema.Draft202012Validator
    return validator_class({"$ref": f"{uri}#{_REQUEST_SCHEMA}"}, registry=registry,
                           format_checker=validator_class.FORMAT_CHECKER)
