"""The alerting rules: valid for Prometheus, behaving as their unit tests say (`promtool`, from
Debian's prometheus package: `make promtool`), wired into prometheus.yml, each with a runbook."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.processes import REPO_ROOT

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "churnwatch.rules.yml"
RULE_TESTS = PROMETHEUS / "rules" / "churnwatch.rules.test.yml"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
# The failures the rules must cover (issue 15), by alert name.
REQUIRED = {"ChurnwatchConsumerLagGrowing", "ChurnwatchScoresStale", "ChurnwatchDeadLetters",
            "ChurnwatchDeliveriesFailing", "ChurnwatchServiceDown", "ChurnwatchDatabaseUnavailable"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run `make promtool` (Debian's prometheus package)")
    return subprocess.run([binary, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def alerting_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces as dashes."""
    anchors = set()
    for line in markdown.splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            title = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_promtool_finds_the_rules_valid() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerting_rules())} rules found" in checked.stdout + checked.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert {rule["alert"] for rule in alerting_rules()} - tested == set()


def test_prometheus_loads_the_rules_file() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert [PROMETHEUS / path for path in config["rule_files"]] == [RULES]
    checked = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_required_failures_are_covered() -> None:
    assert REQUIRED - {rule["alert"] for rule in alerting_rules()} == set()


def test_every_alert_links_its_runbook_section_in_the_operations_guide() -> None:
    anchors = heading_anchors(OPERATIONS.read_text())
    for rule in alerting_rules():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert Path(REPO_ROOT / page) == OPERATIONS, rule["alert"]
        assert anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations.md has no section for {rule['alert']}"
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
