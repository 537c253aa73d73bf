"""Rules: the retention policy as readable YAML (this folder), compiled to durable-rules.

``load_ruleset`` reads and checks a rule set; ``decide`` applies it to scored accounts and
returns one decision per (account, action) with the rule id and why it matched.
"""

from kamflow.rules.decide import DECISION_COLUMNS, decide
from kamflow.rules.language import RULES_DIR, RuleSet, wording
from kamflow.rules.load import load_ruleset, load_wording

__all__ = ["DECISION_COLUMNS", "RULES_DIR", "RuleSet", "decide", "load_ruleset", "load_wording",
           "wording"]
