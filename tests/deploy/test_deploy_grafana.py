"""deploy/grafana/ shows what the bridge exports: every PromQL expression of the dashboard reads metrics and
labels that `Telemetry` renders, rates only counters, takes quantiles of histogram buckets by `le`, and every
metric the bridge exports has a panel. The provisioning files and docker-compose.yml's `ops` profile connect
Grafana to a Prometheus that scrapes the bridge where it serves /metrics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.config.settings import load_settings
from bridge.service.telemetry import Telemetry
from tests.promql_names import Selector, selectors

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "suggestion-bridge.json"
COMPOSE = ROOT / "docker-compose.yml"
# Labels Prometheus adds to every scraped series; the bridge does not export them.
TARGET_LABELS = frozenset({"job", "instance"})
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase"})
# What a family of each type exports, by sample name suffix.
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


@dataclass(frozen=True)
class Exported:
    """A series name the bridge exports: its family, the family's type and the labels its samples carry."""

    family: str
    type: str
    labels: frozenset[str]


def _exported() -> dict[str, Exported]:
    """Every series name a Telemetry renders, after each of its methods has run once (so labelled series exist)."""
    telemetry = Telemetry(templates=["quick-start"])
    telemetry.suggestion_received("quick-start", "accepted")
    telemetry.run_finished("succeeded", cached=False, duration_s=1.5)
    telemetry.operation_created(4)
    telemetry.set_runs_in_flight(3)
    telemetry.set_consumer_lag("bridge.suggestions", 0, 12)
    telemetry.dead_lettered("invalid_json")
    telemetry.publish_transaction(0.02)
    telemetry.set_consumer_paused(True)
    body, _ = telemetry.render()
    out: dict[str, Exported] = {}
    for family in text_string_to_metric_families(body.decode()):
        labels: dict[str, set[str]] = {}
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
        for suffix in SUFFIXES[family.type]:
            name = family.name + suffix
            # The text format types a counter's or histogram's `_created` as a gauge family of its own.
            owner = out[name].family if name in out else family.name
            out[name] = Exported(owner, family.type, frozenset(labels.get(name, set())))
    return out


def _expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of the dashboard, rows' panels included."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} query {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"variable {variable['name']}: expected label_values(metric, label), got {query}"
        yield f"variable {variable['name']!r}", f"max by ({match[2]}) ({match[1]})"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but the rows, a collapsed row's own panels included."""
    top = dashboard["panels"]
    return [p for p in top if p["type"] != "row"] + [c for r in top if r["type"] == "row" for c in r.get("panels", [])]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def exported() -> dict[str, Exported]:
    return _exported()


@pytest.fixture(scope="module")
def read(dashboard: dict[str, Any]) -> list[tuple[str, str, Selector]]:
    """Every selector the dashboard's expressions read, with where it is and the whole expression."""
    found = [(where, expr, s) for where, expr in _expressions(dashboard) for s in selectors(expr)]
    assert len(found) >= 10, "the dashboard reads almost nothing: is the PromQL reader broken?"
    return found


def test_the_promql_reader_tells_series_from_functions_and_grouping() -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket{instance=~"$instance"}[$__rate_interval]))) / b'
    assert selectors(expr) == [
        Selector("a_bucket", frozenset({"le", "instance"}), ("histogram_quantile", "sum", "rate")),
        Selector("b", frozenset({"le"}), ()),
    ]
    assert [s.metric for s in selectors("sum(increase(c_total[1h])) > bool 0 and on (job) d offset 5m")] == [
        "c_total",
        "d",
    ]


def test_every_series_the_dashboard_reads_is_exported(
    read: list[tuple[str, str, Selector]], exported: dict[str, Exported]
) -> None:
    missing = sorted({f"{s.metric} (in {where}: {expr})" for where, expr, s in read if s.metric not in exported})
    assert missing == [], f"the bridge exports none of these; its series are {sorted(exported)}"


def test_every_label_the_dashboard_names_is_on_its_series(
    read: list[tuple[str, str, Selector]], exported: dict[str, Exported]
) -> None:
    for where, _, s in read:
        series = exported.get(s.metric)
        if series is None:
            continue  # test_every_series_the_dashboard_reads_is_exported names it
        unknown = s.labels - series.labels - TARGET_LABELS
        assert not unknown, f"{where}: {s.metric} has no label {sorted(unknown)} (it has {sorted(series.labels)})"


def test_rates_are_of_counters_and_quantiles_of_buckets_by_le(
    read: list[tuple[str, str, Selector]], exported: dict[str, Exported]
) -> None:
    for where, expr, s in read:
        kind = exported[s.metric].type if s.metric in exported else "unknown"
        if COUNTER_FUNCTIONS & set(s.functions):
            assert kind in {"counter", "histogram"}, f"{where}: {s.metric} is a {kind}; rate() needs a counter"
        if "histogram_quantile" in s.functions:
            assert s.metric.endswith("_bucket"), f"{where}: histogram_quantile of {s.metric}, not of its buckets"
            assert "le" in s.labels, f"{where}: histogram_quantile needs the buckets summed by (le): {expr}"


def test_every_metric_the_bridge_exports_has_a_panel(
    read: list[tuple[str, str, Selector]], exported: dict[str, Exported]
) -> None:
    shown = {exported[s.metric].family for _, _, s in read if s.metric in exported}
    assert {e.family for e in exported.values()} - shown == set(), "add a panel for each new metric"


def test_panels_are_titled_unique_and_use_the_chosen_data_source(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard)
    ids = [p["id"] for p in dashboard["panels"]] + [p["id"] for r in dashboard["panels"] for p in r.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["title"] and panel.get("description"), f"panel {panel['id']} needs a title and a description"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']}: repeated refId"
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "two panels with one title"


def test_compose_ops_profile_wires_grafana_to_a_prometheus_that_scrapes_the_bridge() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    grafana, prometheus, bridge = services["grafana"], services["prometheus"], services["bridge"]
    assert grafana["profiles"] == prometheus["profiles"] == ["ops"], "`docker compose up` stays as it was"

    mounts = {PurePosixPath(v.split(":")[1]): ROOT / v.split(":")[0] for v in grafana["volumes"]}
    provisioning = mounts[PurePosixPath("/etc/grafana/provisioning")]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "suggestion-bridge.yaml").read_text())["providers"]
    assert mounts[PurePosixPath(provider["options"]["path"])].resolve() == DASHBOARD.parent
    home = PurePosixPath(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounts[home.parent].resolve() / home.name == DASHBOARD

    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"

    config = {PurePosixPath(v.split(":")[1]): ROOT / v.split(":")[0] for v in prometheus["volumes"]}
    scrape = yaml.safe_load(config[PurePosixPath("/etc/prometheus/prometheus.yml")].read_text())
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (target,) = job["static_configs"][0]["targets"]
    host, _, port = target.partition(":")
    config_file = ROOT / "examples" / PurePosixPath(bridge["command"][2]).relative_to("/app/examples")
    assert host == "bridge"
    assert int(port) == load_settings(config_file).http.port
