"""Silent misconfigurations are refused: each names the file, the line or key, and what to do.

Before, each of these was accepted and quietly did something else than what was written: the
later of two equal YAML keys won, two rules suppressing each other dropped both actions,
`abs(a, b)` in a mapping overwrote column b, an unknown encoding raised a raw LookupError, and a
supervisor missing from owners.yaml received escalations as a stranger, and a sandbox with an
empty allowlist held every email while each run reported them handled.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kamflow import config
from kamflow.core.errors import ConfigError
from kamflow.intake import load_mapping
from kamflow.notifications import Allowlist, FileOutbox, SandboxBackend
from kamflow.notifications.sandbox import SandboxMisconfigured
from kamflow.rules import RULES_DIR, load_ruleset


def rule_set(directory: Path, rules_text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "actions.yaml").write_text(
        (RULES_DIR / "actions.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (directory / "r.yaml").write_text(rules_text, encoding="utf-8")
    return directory


RULE = """  - id: {id}
    description: {{en: d, zh: d}}
    when: {{churn_band: high}}
    then: [care_call]
"""


def test_a_rule_key_written_twice_is_refused_with_its_line(tmp_path: Path) -> None:
    """Two `when:` in one rule: the first would silently vanish; the loader names file and line."""
    text = ("rules:\n  - id: twice\n    description: {en: d, zh: d}\n"
            "    when: {churn_band: high}\n    when: {churn_band: low}\n    then: [care_call]\n")
    with pytest.raises(ConfigError) as caught:
        load_ruleset(rule_set(tmp_path / "rules", text))
    message = str(caught.value)
    assert "r.yaml:5" in message and "'when' appears twice" in message


def test_two_rules_suppressing_each_other_are_refused(tmp_path: Path) -> None:
    """A suppression cycle would drop every action of the cycle when all fire: refused."""
    text = "rules:\n" + (RULE.format(id="a") + "    suppresses: [b]\n"
                         + RULE.format(id="b") + "    suppresses: [a]\n")
    with pytest.raises(ConfigError) as caught:
        load_ruleset(rule_set(tmp_path / "rules", text))
    assert "a -> b -> a" in str(caught.value) and "cycle" in str(caught.value)


def test_a_suppression_chain_without_cycle_still_loads(tmp_path: Path) -> None:
    """a suppresses b, b suppresses c: a chain, not a cycle, so the set loads."""
    text = "rules:\n" + (RULE.format(id="a") + "    suppresses: [b]\n"
                         + RULE.format(id="b") + "    suppresses: [c]\n" + RULE.format(id="c"))
    assert {r.id for r in load_ruleset(rule_set(tmp_path / "rules", text)).rules} == {"a", "b", "c"}


def mapping(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


MAPPING = """tables:
  accounts:
    file: export.csv
{extra}    columns:
      account_id: '{{customerID}}'
      employees: {revenue}
"""


def test_a_mapping_key_written_twice_is_refused(tmp_path: Path) -> None:
    """`file:` twice in one table: refused with the mapping file's line."""
    path = mapping(tmp_path, MAPPING.format(extra="    file: other.csv\n",
                                            revenue="MonthlyCharges"))
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value) and "'file' appears twice" in str(caught.value)
    assert "line 4" in str(caught.value)


@pytest.mark.parametrize("expression, arity", [
    ("abs(MonthlyCharges, tenure)", "abs() takes 1"), ("max(MonthlyCharges)", "max() takes 2"),
    ("round(MonthlyCharges, tenure)", "round() takes 1")])
def test_a_function_with_the_wrong_number_of_arguments_is_refused(tmp_path: Path, expression,
                                                                  arity) -> None:
    """`abs(a, b)` would write |a| into column b (numpy's out argument): refused at load time."""
    path = mapping(tmp_path, MAPPING.format(extra="", revenue=f"{{expr: '{expression}'}}"))
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert arity in str(caught.value) and "employees" in str(caught.value)


def test_an_unknown_encoding_is_refused_when_the_mapping_loads(tmp_path: Path) -> None:
    """`encoding: gbk2312` is a ConfigError naming the key, not a raw LookupError at read time."""
    path = mapping(tmp_path, MAPPING.format(extra="    encoding: gbk2312\n",
                                            revenue="MonthlyCharges"))
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert "tables.accounts.encoding" in str(caught.value) and "gbk2312" in str(caught.value)


def test_a_known_encoding_still_loads(tmp_path: Path) -> None:
    """GB18030 named explicitly is accepted."""
    path = mapping(tmp_path, MAPPING.format(extra="    encoding: gb18030\n",
                                            revenue="MonthlyCharges"))
    assert load_mapping(path).tables["accounts"].encoding == "gb18030"


def test_a_conf_key_written_twice_is_refused(tmp_path: Path) -> None:
    """scoring.yaml with `churn:` twice: refused naming the file and the key."""
    text = (config.conf_dir() / "scoring.yaml").read_text(encoding="utf-8")
    path = tmp_path / "scoring.yaml"
    path.write_text(text + "\nchurn: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load_scoring(path)
    assert str(path) in str(caught.value) and "'churn' appears twice" in str(caught.value)


def owners_with(tmp_path: Path, change) -> Path:
    doc = yaml.safe_load((config.conf_dir() / "owners.yaml").read_text(encoding="utf-8"))
    change(doc)
    path = tmp_path / "owners.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def test_a_supervisor_missing_from_owners_is_refused(tmp_path: Path) -> None:
    """A person whose supervisor is an address nobody lists (a typo) is refused, naming both."""
    path = owners_with(tmp_path, lambda doc: doc.update(people=[
        {"email": "wang@x.example", "name": "王芳", "supervisor": "zhoa@x.example"}]))
    with pytest.raises(ConfigError) as caught:
        config.load_owners(path)
    assert "wang@x.example's supervisor 'zhoa@x.example' is not listed" in str(caught.value)


def test_an_unknown_default_supervisor_is_refused(tmp_path: Path) -> None:
    """default_supervisor must be someone the file lists too."""
    path = owners_with(tmp_path, lambda doc: doc.update(default_supervisor="nobody@x.example"))
    with pytest.raises(ConfigError) as caught:
        config.load_owners(path)
    assert "default_supervisor 'nobody@x.example' is not listed" in str(caught.value)


def test_a_sandbox_that_would_hold_every_email_is_refused(tmp_path: Path) -> None:
    """Sandbox on, empty allowlist, no redirect: every email would be held while runs report
    them handled; refused naming the two variables that fix it. With a redirect it is fine."""
    inner = FileOutbox(tmp_path / "outbox")
    with pytest.raises(SandboxMisconfigured) as caught:
        SandboxBackend(inner, Allowlist.parse(""))
    assert "KAMFLOW_EMAIL_ALLOWLIST" in str(caught.value)
    assert "KAMFLOW_EMAIL_SANDBOX_REDIRECT" in str(caught.value)
    assert isinstance(caught.value, ConfigError)
    SandboxBackend(inner, Allowlist.parse(""), redirect_to="qa@example.test")
