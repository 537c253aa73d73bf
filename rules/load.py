"""``load_ruleset``: a rule set read and checked by the language, then compiled by the engine.

The two steps live apart so the rule language (rules/language.py) never imports the engine
adapter: the adapter's compile check is handed to the parser here.
"""

from __future__ import annotations

from pathlib import Path

from kamflow.core import vocabulary
from kamflow.intake.signals import Signal
from kamflow.rules.engine import refused_rules
from kamflow.rules.language import RULES_DIR, RuleSet, parse_ruleset, wording


def load_ruleset(directory: Path | str = RULES_DIR, signals: tuple[Signal, ...] = ()
                 ) -> RuleSet:
    """Read and check a rule set directory, including that the engine compiles every rule;
    raise ConfigError listing every problem with its file, line and rule id. ``signals``: the
    operator signals of the mapping in use, which rules may test."""
    return parse_ruleset(directory, refused=refused_rules, signals=signals)


def load_wording(directory: Path | str = RULES_DIR) -> vocabulary.Wording:
    """The words of the rule set in ``directory`` (default: the shipped rules) for emails."""
    return wording(load_ruleset(directory))
