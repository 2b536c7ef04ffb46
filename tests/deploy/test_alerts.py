"""deploy/observability/alerts.yaml: well-formed Prometheus rules over metrics the services export."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import chromaline.cli.services  # noqa: F401 - every service module, so all their metrics are registered

ROOT = Path(__file__).resolve().parents[2]
ALERTS_FILE = ROOT / "deploy" / "observability" / "alerts.yaml"
SEVERITIES = {"warning", "critical"}
DURATION = re.compile(r"^(\d+[smhdwy])+$")

SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers,
    ranges and label lists are taken out, and function or aggregation names set aside."""
    text = _LABEL_LISTS.sub(" ", _BRACES.sub(" ", _STRINGS.sub(" ", expression)))
    return {
        name for name, call in _IDENTIFIER.findall(text) if not call and name.lower() not in PROMQL_KEYWORDS
    }


def exported_series() -> set[str]:
    """Every series name the registry can expose, whether or not a sample was recorded yet."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_extractor_finds_metrics_and_nothing_else() -> None:
    expression = """
        histogram_quantile(0.95, sum by (service, le) (rate(a_seconds_bucket{route!~"/x/(y|z)"}[5m])))
          > 1 and on (service) b_total offset 5m / ignoring (type) c unless max without (le) (d:recorded)
    """
    assert metric_names(expression) == {"a_seconds_bucket", "b_total", "c", "d:recorded"}


def test_the_file_is_a_list_of_uniquely_named_groups_of_rules() -> None:
    document = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names))
    alerts = [rule["alert"] for rule in load_rules()]
    assert len(alerts) == len(set(alerts))


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_each_rule_is_complete(rule: dict[str, Any]) -> None:
    assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
    assert re.fullmatch(r"Chromaline[A-Z][A-Za-z]+", rule["alert"])
    assert isinstance(rule["expr"], str)
    assert rule["expr"].strip()
    assert DURATION.match(str(rule["for"]))
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) == {"summary", "description"}
    assert all(text.strip() for text in rule["annotations"].values())
    assert rule["expr"].count("(") == rule["expr"].count(")")


@pytest.mark.parametrize("rule", load_rules(), ids=lambda rule: str(rule.get("alert")))
def test_each_rule_uses_only_metrics_the_services_export(rule: dict[str, Any]) -> None:
    used = metric_names(rule["expr"])
    assert used, "a rule that reads no metric never fires"
    assert used <= exported_series(), f"not exported: {sorted(used - exported_series())}"


def test_the_rules_cover_what_matters() -> None:
    used = set().union(*(metric_names(rule["expr"]) for rule in load_rules()))
    assert used >= {
        "chromaline_http_requests_total",
        "chromaline_http_request_seconds_bucket",
        "chromaline_events_consumed_total",
        "chromaline_events_dead_lettered_total",
        "chromaline_outbox_backlog",
        "chromaline_outbox_oldest_unsent_seconds",
        "chromaline_event_queue_lag_seconds_bucket",
        "chromaline_db_pool_checked_out",
    }
