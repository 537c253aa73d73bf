"""Tests of the typed configuration: conf/scoring.yaml, owners.yaml and pipeline.yaml."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from kamflow import config
from kamflow.core.errors import ConfigError
from kamflow.core.settings import DEFAULT_CONF_DIR
from kamflow.scoring import ScoringConfig
from kamflow.scoring.config import ClassCut

DROP = object()  # marks a key to delete


def shipped(name: str) -> dict:
    return yaml.safe_load((DEFAULT_CONF_DIR / name).read_text(encoding="utf-8"))


def changed(doc: dict, dotted: str, value: Any) -> dict:
    """A deep copy of `doc` with the key at `dotted` set to `value` (or deleted with DROP)."""
    out = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return out


def write(tmp_path: Path, name: str, doc: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped files

def test_shipped_scoring_config_loads_with_its_values() -> None:
    """conf/scoring.yaml loads into a ScoringConfig holding the values written in the file."""
    scoring = config.load_scoring()
    doc = shipped("scoring.yaml")
    assert scoring.current_cut == ClassCut("top_share",
                                           doc["value"]["classes"]["current_top_share"])
    assert (scoring.band_medium, scoring.band_high, scoring.band_critical) == tuple(
        doc["churn"]["bands"][b] for b in ("medium", "high", "critical"))
    assert [f.name for f in scoring.factors] == list(doc["churn"]["factors"])
    assert dict(scoring.current_weights) == doc["value"]["current"]
    assert dict(scoring.strategic_industry) == doc["value"]["strategic_industry"]


def test_shipped_owners_and_pipeline_load() -> None:
    """conf/owners.yaml and conf/pipeline.yaml load into their typed objects."""
    owners = config.load_owners()
    assert owners.fallback.email == shipped("owners.yaml")["fallback"]["email"]
    assert set(owners.roles) == set(shipped("owners.yaml")["roles"])
    assert owners.manager_language in ("en", "zh-CN")
    pipeline = config.load_pipeline()
    assert pipeline.validation.max_quarantine_share == pytest.approx(
        shipped("pipeline.yaml")["validation"]["max_quarantine_share"])


def test_kamflow_conf_points_at_another_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """$KAMFLOW_CONF selects the configuration directory the loaders read."""
    shutil.copytree(DEFAULT_CONF_DIR, tmp_path / "conf")
    write(tmp_path / "conf", "pipeline.yaml", {"validation": {"max_quarantine_share": 0.05}})
    monkeypatch.setenv("KAMFLOW_CONF", str(tmp_path / "conf"))
    assert config.conf_dir() == tmp_path / "conf"
    assert config.load_pipeline().validation.max_quarantine_share == 0.05


# --------------------------------------------------------------------------- scoring.yaml

@pytest.mark.parametrize(("dotted", "value", "key"), [
    # unknown keys, at every level
    ("extra", {"a": 1}, "extra"),
    ("value.weights", {}, "value.weights"),
    ("value.classes.middle_cutoff", 40, "value.classes.middle_cutoff"),
    ("value.current.revenue", 0.2, "value.current.revenue"),
    ("value.potential.wallet_share", 0.2, "value.potential.wallet_share"),
    ("value.strategic_industry.goverment", 1.0, "value.strategic_industry.goverment"),
    ("lifecycle.stable_months", 48, "lifecycle.stable_months"),
    ("churn.factors.complaints.threshold", 2, "churn.factors.complaints.threshold"),
    ("churn.bands.low", 0, "churn.bands.low"),
    # missing keys
    ("lifecycle", DROP, "lifecycle"),
    ("lifecycle.growth_trend", DROP, "lifecycle.growth_trend"),
    ("churn.factors.complaints.full", DROP, "churn.factors.complaints.full"),
    ("churn.bands.critical", DROP, "churn.bands.critical"),
    # numbers that are not numbers
    ("value.current.avg_monthly_billed", "high", "value.current.avg_monthly_billed"),
    ("value.current.avg_monthly_billed", True, "value.current.avg_monthly_billed"),
    ("value.current.avg_monthly_billed", float("nan"), "value.current.avg_monthly_billed"),
    ("churn.factors.complaints.weight", "0.15", "churn.factors.complaints.weight"),
    ("churn.factors.complaints.start", None, "churn.factors.complaints.start"),
    ("lifecycle.decline_trend", float("inf"), "lifecycle.decline_trend"),
    # numbers out of range
    ("value.current.avg_monthly_billed", -0.1, "value.current.avg_monthly_billed"),
    ("value.current", {k: 0 for k in shipped("scoring.yaml")["value"]["current"]},
     "value.current"),
    ("value.strategic_industry.it", 1.5, "value.strategic_industry.it"),
    ("value.classes.current_top_share", 1.5, "value.classes.current_top_share"),
    ("churn.factors.complaints.weight", -1, "churn.factors.complaints.weight"),
    ("churn.bands.critical", 101, "churn.bands.critical"),
    # rules between values
    ("churn.bands", {"medium": 40, "high": 35, "critical": 55}, "churn.bands"),
    ("churn.bands", {"medium": 20, "high": 55, "critical": 55}, "churn.bands"),
    ("churn.factors.complaints.signal", "complaints", "churn.factors.complaints.signal"),
    ("churn.factors.complaints.full", 0, "churn.factors.complaints"),
    ("churn.factors", {}, "churn.factors"),
    ("churn.factors", [1, 2], "churn.factors"),
    ("value.strategic_industry", ["government"], "value.strategic_industry"),
    # learnt bands, folds and the learn method
    ("churn.learnt_bands.critical.rate_multiple", 1, "churn.learnt_bands"),
    ("churn.learnt_bands.critical.top_share", 0.5, "churn.learnt_bands"),
    ("churn.learnt_bands.high.top_share", 1.5, "churn.learnt_bands.high.top_share"),
    ("churn.learnt_bands.high.rank", 3, "churn.learnt_bands.high.rank"),
    ("churn.learnt_bands.low", {}, "churn.learnt_bands.low"),
    ("churn.learn", "random_forest", "churn.learn"),
    ("backtest.folds", 1, "backtest.folds"),
    ("backtest.folds", 2.5, "backtest.folds"),
])
def test_bad_scoring_config_is_refused_naming_the_key(dotted: str, value: Any,
                                                      key: str) -> None:
    """Decision table: each bad key or value is refused with a ConfigError naming the key."""
    doc = changed(shipped("scoring.yaml"), dotted, value)
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")) as caught:
        ScoringConfig.from_mapping(doc, source="my-scoring.yaml")
    assert str(caught.value).startswith("my-scoring.yaml: ")


@pytest.mark.parametrize(("dotted", "value"), [
    ("value.current.avg_monthly_billed", 2),            # integers are numbers too
    ("value.current.cost_to_serve", 0),                 # one weight off, others positive
    ("churn.factors.no_contact", DROP),                 # fewer factors
    ("churn.bands", {"medium": 1, "high": 2, "critical": 100}),
    ("value.strategic_industry.tourism", DROP),         # an unlisted industry scores 0
    ("churn.learnt_bands", DROP),                       # the defaults
    ("churn.learnt_bands.medium", DROP),                # the default for that band
    ("churn.learn", "gradient_boosting"),
    ("backtest.folds", 10),
])
def test_acceptable_variations_load(dotted: str, value: Any) -> None:
    """Legitimate variations of the scoring configuration are accepted."""
    ScoringConfig.from_mapping(changed(shipped("scoring.yaml"), dotted, value))


def test_scoring_file_error_names_the_file(tmp_path: Path) -> None:
    """A bad value read from a file is refused with that file's path and the key."""
    path = write(tmp_path, "scoring.yaml",
                 changed(shipped("scoring.yaml"), "churn.bands.medium", 90))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: key 'churn.bands'")):
        config.load_scoring(path)


# --------------------------------------------------------------------------- owners.yaml

@pytest.mark.parametrize(("dotted", "value", "key"), [
    ("roles.sla_team.email", DROP, "roles.sla_team.email"),
    ("roles.sla_team.name", "", "roles.sla_team.name"),
    ("roles.sla_team.email", "sla-team.operator.example", "roles.sla_team.email"),
    ("roles.sla_team.supervisor", "noc-manager", "roles.sla_team.supervisor"),
    ("roles.sla_team.working_hours", "9-6", "roles.sla_team.working_hours"),
    ("roles.sla_team", "sla-team@operator.example", "roles.sla_team"),
    ("roles.sla_team.language", "fr", "roles.sla_team.language"),
    ("fallback", DROP, "fallback"),
    ("fallback.language", "zh", "fallback.language"),
    ("manager_language", "de", "manager_language"),
    ("roles", ["sla_team"], "roles"),
    ("escalation", {"name": "x", "email": "x@operator.example"}, "escalation"),
])
def test_bad_owners_config_is_refused_naming_the_key(tmp_path: Path, dotted: str, value: Any,
                                                     key: str) -> None:
    """Decision table: each bad owners.yaml value is refused with the file and key named."""
    path = write(tmp_path, "owners.yaml", changed(shipped("owners.yaml"), dotted, value))
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")) as caught:
        config.load_owners(path)
    assert str(path) in str(caught.value)


def test_unknown_key_lists_the_allowed_keys_in_one_paragraph(tmp_path: Path) -> None:
    """An unknown key is named with the keys allowed at that place, in one line without any
    pydantic wording or link."""
    path = write(tmp_path, "owners.yaml",
                 changed(shipped("owners.yaml"), "roles.sla_team.team", "noc"))
    with pytest.raises(ConfigError) as caught:
        config.load_owners(path)
    message = str(caught.value)
    assert message == (f"{path}: key 'roles.sla_team.team' is unknown; allowed: name, email, "
                       "language, supervisor, working_hours, capacity")
    scoring = changed(shipped("scoring.yaml"), "churn.factors.complaints.weight", "0.15")
    with pytest.raises(ConfigError) as caught:
        ScoringConfig.from_mapping(scoring, source="s.yaml")
    message = str(caught.value)
    assert message.startswith("s.yaml: key 'churn.factors.complaints.weight': ")
    assert "'0.15'" in message and "\n" not in message
    assert not any(word in message for word in ("validation error", "pydantic", "Value error"))


def test_bad_people_file_row_names_the_line_and_column(tmp_path: Path) -> None:
    """A bad cell in people_file is refused naming the CSV line and the column; empty cells
    are left unset."""
    (tmp_path / "staff.csv").write_text("email,name,supervisor,language,working_hours\n"
                                        "wang@x.example,W,,,\nli@x.example,L,,fr,\n",
                                        encoding="utf-8")
    path = write(tmp_path, "owners.yaml",
                 changed(shipped("owners.yaml"), "people_file", "staff.csv"))
    with pytest.raises(ConfigError, match=re.escape(
            "key 'people_file staff.csv line 3.language': input should be 'en' or 'zh-CN', "
            "not 'fr'")):
        config.load_owners(path)
    (tmp_path / "staff.csv").write_text("email,name,supervisor,language,working_hours\n"
                                        "wang@x.example,W,,,\n", encoding="utf-8")
    wang = config.load_owners(path).lookup("wang@x.example")
    assert wang is not None and (wang.supervisor, wang.working_hours) == (None, None)
    assert wang.language == shipped("owners.yaml")["manager_language"]


# --------------------------------------------------------------------------- pipeline.yaml

@pytest.mark.parametrize(("dotted", "value", "key"), [
    ("validation.max_quarantine_share", 1.5, "validation.max_quarantine_share"),
    ("validation.max_quarantine_share", -0.1, "validation.max_quarantine_share"),
    ("validation.max_quarantine_share", "20%", "validation.max_quarantine_share"),
    ("validation.max_quarantine_share", True, "validation.max_quarantine_share"),
    ("validation.max_share", 0.1, "validation.max_share"),
    ("validation", 0.3, "validation"),
    ("max_quarantine_share", 0.5, "max_quarantine_share"),  # right name, wrong place
])
def test_bad_pipeline_config_is_refused_naming_the_key(tmp_path: Path, dotted: str, value: Any,
                                                       key: str) -> None:
    """Decision table: each bad pipeline.yaml value is refused with the file and key named."""
    path = write(tmp_path, "pipeline.yaml", changed(shipped("pipeline.yaml"), dotted, value))
    with pytest.raises(ConfigError, match=re.escape(f"key '{key}'")) as caught:
        config.load_pipeline(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(("text", "share"), [
    ("validation:\n  max_quarantine_share: 0\n", 0.0),
    ("validation:\n  max_quarantine_share: 1\n", 1.0),
    ("validation:\n", 0.2),
    ("{}\n", 0.2),
])
def test_pipeline_share_bounds_and_default(tmp_path: Path, text: str, share: float) -> None:
    """0 and 1 are valid shares; an absent share is the 20 % default."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(text, encoding="utf-8")
    assert config.load_pipeline(path).validation.max_quarantine_share == share


# --------------------------------------------------------------------------- the files themselves

@pytest.mark.parametrize("loader", [config.load_scoring, config.load_owners,
                                    config.load_pipeline])
def test_missing_config_file_is_refused_naming_the_path(tmp_path: Path, loader) -> None:
    """A configuration file that does not exist is a ConfigError naming its path."""
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        loader(path)


@pytest.mark.parametrize("loader", [config.load_scoring, config.load_owners,
                                    config.load_pipeline])
def test_missing_default_file_names_the_conf_directory(tmp_path: Path, loader,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With $KAMFLOW_CONF pointing at an empty directory, the error names the expected file."""
    monkeypatch.setenv("KAMFLOW_CONF", str(tmp_path))
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path)) + r".*\.yaml is missing"):
        loader()


@pytest.mark.parametrize(("text", "problem"), [
    ("value: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "must be a mapping"),
])
@pytest.mark.parametrize("loader", [config.load_scoring, config.load_owners,
                                    config.load_pipeline])
def test_unreadable_config_file_is_refused_naming_the_path(tmp_path: Path, loader, text: str,
                                                           problem: str) -> None:
    """Invalid YAML, or YAML that is not a mapping, is a ConfigError naming the file."""
    path = tmp_path / "conf.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=problem) as caught:
        loader(path)
    assert str(path) in str(caught.value)
