"""deploy/prometheus: the alert rules pass ``promtool check rules`` and their unit tests
(``promtool test rules``: every alert fires on one series and stays silent on another), the
scrape configuration passes ``promtool check config``, and every alert says what it means and
where its runbook section is."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.promql import (
    ALERTS,
    ALERTS_TEST,
    QUOTES_JOB,
    RUNBOOK,
    SCRAPE_CONFIG,
    WEB_JOB,
    alert_rules,
    selectors,
)


def promtool(*args: str) -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: .ci/run installs Debian's prometheus package"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_promtool_checks_the_rules() -> None:
    output = promtool("check", "rules", str(ALERTS))
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_promtool_unit_tests_of_every_alert_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(ALERTS_TEST))


def test_promtool_checks_the_scrape_configuration() -> None:
    output = promtool("check", "config", str(SCRAPE_CONFIG))
    assert "is valid prometheus config file syntax" in output
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == {WEB_JOB, QUOTES_JOB}
    assert config["rule_files"] == ["alerts.yml"]


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    assert {name: cases.get(name, set()) for name in names} == {
        name: {True, False} for name in names
    }


def _runbook_anchors() -> set[str]:
    """GitHub's anchors of docs/runbook.md's headings."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_explains_itself_and_links_its_runbook_section(rule: dict) -> None:
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and len(annotations["description"]) > 40
    assert rule["labels"]["severity"] in {"critical", "warning"}
    link = annotations["runbook_url"]
    page, _, anchor = link.partition("#")
    assert page == "docs/runbook.md"
    assert anchor == rule["alert"].lower(), "one runbook section per alert, named after it"
    assert anchor in _runbook_anchors(), f"docs/runbook.md has no section #{anchor}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_selector_names_the_job_it_reads(rule: dict) -> None:
    """The ingestor's endpoint serves the database gauges too: a selector without a job would
    count them twice."""
    for selector in selectors(rule["expr"]):
        assert selector.job in {WEB_JOB, QUOTES_JOB}, (rule["alert"], selector)
