"""The PromQL that the provisioned Grafana dashboard and the Prometheus rules run."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "churnwatch.json"
RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "churnwatch.rules.yml"
# Grafana's variable query `label_values(<series selector>, <label>)`: the selector is PromQL.
_LABEL_VALUES = re.compile(r"label_values\((.*),\s*\w+\s*\)", re.DOTALL)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows too."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    dashboard = json.loads(path.read_text())
    expressions = [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]
    expressions += [a["expr"] for a in dashboard.get("annotations", {}).get("list", []) if "expr" in a]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        match = _LABEL_VALUES.fullmatch(query.strip())
        expressions.append(match.group(1) if match else query)
    return expressions


def rule_expressions(path: Path = RULES) -> list[str]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]
