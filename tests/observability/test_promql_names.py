"""Reading metric names out of PromQL: functions, aggregations, keywords, labels, label values,
ranges and Grafana variables are not metric names."""

from __future__ import annotations

import pytest

from tests.observability.promql import exposed_names, metric_names


@pytest.mark.parametrize(("expression", "names"), [
    ("up", {"up"}),
    ('up{job="churnwatch"} == 0', {"up"}),
    ("sum by (service, group) (churnwatch_consumer_lag) > 1000",
     {"churnwatch_consumer_lag"}),
    ('histogram_quantile(0.99, sum by (service, le) '
     '(rate(churnwatch_batch_processing_seconds_bucket{service=~"$service"}[$__rate_interval])))',
     {"churnwatch_batch_processing_seconds_bucket"}),
    ('sum(rate(a_total{status=~"5..", route="/v1/batch"}[5m])) / sum(rate(a_total[5m])) > 0.05',
     {"a_total"}),
    ("max by (service) (x) > 300 and on () sum(rate(y_total[5m])) > 0", {"x", "y_total"}),
    ("x * on (instance) group_left (version) churnwatch_build_info", {"x", "churnwatch_build_info"}),
    ("sum without (instance) (increase(z_total[1h] offset 1d))", {"z_total"}),
    ('1 - max by (signal_type) (ratio{signal_type!="by"})', {"ratio"}),
    ("label_replace(m, \"dst\", \"$1\", \"src\", \"(.*)\")", {"m"}),
    ("sum by (service) (rate(m:recorded:rate5m[5m])) * 1e3", {"m:recorded:rate5m"}),
    ("clamp_min(a, 0) unless b or c and bool d", {"a", "b", "c", "d"}),
    ("rate(x[5m:1m])", {"x"}),
])
def test_metric_names_are_read_out_of_promql(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_exposed_names_follow_each_metric_type() -> None:
    page = """# HELP c_total A counter.
# TYPE c_total counter
c_total{a="1"} 2.0
# HELP h A histogram.
# TYPE h histogram
# HELP g A gauge.
# TYPE g gauge
g 1.0
# HELP b_info Build.
# TYPE b_info gauge
b_info{version="1"} 1.0
"""
    declared, sampled = exposed_names(page)
    assert {"c_total", "c_created", "h_bucket", "h_sum", "h_count", "g", "b_info"} <= declared
    assert sampled == {"c_total", "g", "b_info"}
