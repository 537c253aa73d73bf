"""YAML as kamflow reads every configuration file: safe, and a repeated key is an error.

PyYAML keeps the last of two equal keys without a word, so a rule, a mapping or a threshold
written twice silently loses its first version. Here the second one is refused with its line.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (merge keys aside)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == MERGE_TAG:
                    continue  # `<<: *anchor` merges defaults that the mapping may override
                key = self.construct_object(key_node, deep=True)
                try:
                    line = first_line.get(key)
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    break
                if line is not None:
                    raise ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"the key {key!r} appears twice (first on line {line}); YAML would keep "
                        "only the last one: remove or rename one of them", key_node.start_mark)
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str) -> Any:
    """Parse ``text`` like ``yaml.safe_load``, refusing repeated keys (a ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
