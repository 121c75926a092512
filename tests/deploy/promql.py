"""The PromQL of deploy/: every expression of the alert rules and of the Grafana dashboard, and
the series each one selects, found by parsing it (promql-parser, the Rust port of Prometheus'
own grammar) rather than by pattern-matching text, so that functions, keywords, label names in
``by``/``on`` clauses and durations are never mistaken for metrics."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from django.conf import settings

DEPLOY = Path(settings.BASE_DIR) / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "tradeops.json"
RUNBOOK = Path(settings.BASE_DIR) / "docs" / "runbook.md"

WEB_JOB, QUOTES_JOB = "tradeops", "tradeops-quotes"
# Series Prometheus makes itself for every target: not on any /metrics page.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

# Grafana's variables, replaced by what Grafana would send (an interval, a range).
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: dict[str, tuple[str, str]]  # label -> (operator, value); __name__ excluded

    @property
    def job(self) -> str | None:
        op, value = self.matchers.get("job", ("", ""))
        return value if op == "=" else None


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included (rows themselves excluded)."""
    panels = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            panels += panel.get("panels", [])
        else:
            panels.append(panel)
    return panels


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables replaced) of every target."""
    found = []
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            found.append((panel["title"], grafana_interpolate(target["expr"])))
    return found


def grafana_interpolate(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    if "$" in expr:
        raise AssertionError(f"unknown Grafana variable in {expr!r}")
    return expr


_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr`` (raises on a syntax error)."""
    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {}
            name = node.name
            for matcher in node.matchers.matchers:
                op = _OPS[re.sub(r"\W.*", "", str(matcher.op).split(".")[-1])]
                if matcher.name == "__name__" and op == "=":
                    name = matcher.value
                else:
                    matchers[matcher.name] = (op, matcher.value)
            if name is None:
                raise AssertionError(f"a selector without a metric name in {expr!r}")
            found.append(Selector(name, matchers))

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found
