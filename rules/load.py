"""``load_ruleset``: a rule set read and checked by the language, then compiled by the engine.

The two steps live apart so the rule language (rules/language.py) never imports the engine
adapter: the adapter's compile check is handed to the parser here.
"""

from __future__ import annotations

from pathlib import Path

from kamflow.rules.engine import refused_rules
from kamflow.rules.language import RULES_DIR, RuleSet, parse_ruleset


def load_ruleset(directory: Path | str = RULES_DIR) -> RuleSet:
    """Read and check a rule set directory, including that the engine compiles every rule;
    raise ConfigError listing every problem with its file, line and rule id."""
    return parse_ruleset(directory, refused=refused_rules)
