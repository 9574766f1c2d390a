"""The metric names a PromQL expression reads, and the sample names a /metrics page exposes.

Names, not a full parser: strings, label matchers, ranges, grouping label lists and Grafana
variables are removed first; what is left that is an identifier not followed by "(" (a function
or an aggregation) and not a keyword is a metric name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "start", "end"}
# Series Prometheus makes itself, not scraped from a target.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
# Sample names of each metric type, from the family name the text format declares.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")


def metric_names(expression: str) -> set[str]:
    """The metric names `expression` selects (Prometheus' own series included)."""
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)  # "sum by (a) (x)" reads as "sum (x)"
    text = _VARIABLE.sub("1", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end():].lstrip()
        if rest.startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def exposed_names(page: str) -> tuple[set[str], set[str]]:
    """(declared, with_samples): every sample name the metric families of a /metrics page can carry,
    and those that carry at least one sample now."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(page):
        declared.update(family.name + suffix for suffix in SUFFIXES[family.type])
        sampled.update(sample.name for sample in family.samples)
    return declared, sampled


def names_in(expressions: Iterable[str]) -> set[str]:
    return {name for expression in expressions for name in metric_names(expression)}
