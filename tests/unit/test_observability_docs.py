"""The Grafana dashboard and the Prometheus rules in docs/ stay in step with the metrics the
processes really expose: every metric name and label they query is in the exposition of
the worker's, the notifier's or the api's registry, so renaming a metric breaks this test.
With ``promtool`` on the PATH (Debian's ``prometheus`` package), the rules and the
dashboard's queries are also parsed by Prometheus and the alerts run on made-up series."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from config.settings import WorkerSettings
from services.api import Metrics
from services.notifier import NotifierMetrics
from services.worker.metrics import WorkerMetrics
from watchkeeper.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "watchkeeper.json"
RULES = ROOT / "docs" / "prometheus" / "watchkeeper-rules.yml"
SCRAPE = ROOT / "docs" / "prometheus" / "prometheus.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every series it scrapes
METRIC = re.compile(r"(?<![A-Za-z0-9_:])(?:watchkeeper|process)_[a-z_]+")
SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])((?:watchkeeper|process)_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
# on the PATH, or unpacked from Debian's package by scripts/setup.sh
PROMTOOL = shutil.which("promtool") or shutil.which(
    "promtool", path=str(ROOT / ".cache" / "prometheus" / "usr" / "bin"))
# under scripts/test.sh (and CI) a missing promtool is a failure, never a silent skip
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and os.environ.get("WATCHKEEPER_REQUIRE_SERVICES") != "1",
    reason="promtool is not installed (scripts/setup.sh fetches it)")


@cache
def exposed() -> dict[str, frozenset[str]]:
    """Every sample name the three registries expose, with its label names."""
    worker = WorkerMetrics()
    worker.watch_checkpoints(lambda: {0: 1.0})
    notifier = NotifierMetrics()
    api = Metrics(CollectorRegistry())
    registries: list[tuple[object, CollectorRegistry]] = [
        (worker, worker.registry), (notifier, notifier.registry), (api, api.registry)]
    names: dict[str, set[str]] = {}
    for owner, registry in registries:
        # a labelled metric exposes no sample before its first child: make one of each, so
        # the exposition shows its sample names and labels (prometheus-client keeps the
        # label names only in ``_labelnames``)
        for wrapper in vars(owner).values():
            if isinstance(wrapper, MetricWrapperBase) and wrapper._labelnames:
                wrapper.labels(*["x"] * len(wrapper._labelnames))
        text = generate_latest(registry).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in names.items()}


def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested ones too."""
    found: list[dict[str, Any]] = []
    for panel in data["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def datasources(node: Any) -> list[Any]:
    """Every ``datasource`` value in the JSON, in document order."""
    if isinstance(node, dict):
        return [v for k, child in node.items()
                for v in ([child] if k == "datasource" else datasources(child))]
    if isinstance(node, list):
        return [v for child in node for v in datasources(child)]
    return []


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in panels(dashboard()) for t in p.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def rule_exprs() -> list[str]:
    return [str(rule["expr"]) for rule in rules()]


def unknown_names(expr: str) -> list[str]:
    """The metric and label names ``expr`` queries that no registry exposes."""
    known = exposed()
    wrong = [name for name in METRIC.findall(expr) if name not in known]
    used: set[str] = set(TARGET_LABELS)
    for name in METRIC.findall(expr):
        used |= known.get(name, frozenset())
    for name, matchers in SELECTOR.findall(expr):
        wrong += [f"{name}{{{label}}}" for label in MATCHER.findall(matchers)
                  if label not in known.get(name, frozenset()) | TARGET_LABELS]
    for grouping in GROUPING.findall(expr):
        wrong += [f"by/on ({label})" for label in re.findall(r"[A-Za-z_]\w*", grouping)
                  if label not in used]
    return wrong


def test_exposition_is_what_the_checks_read() -> None:
    known = exposed()
    assert known["watchkeeper_worker_messages_total"] == {"topic"}
    assert known["watchkeeper_worker_batch_seconds_bucket"] == {"le"}
    assert "watchkeeper_worker_batch_seconds" not in known  # a histogram's name is no series
    assert known["watchkeeper_worker_checkpoint_age_seconds"] == {"partition"}
    assert known["watchkeeper_api_request_seconds_bucket"] == {"route", "le"}
    assert known["watchkeeper_notifier_deliveries_total"] == {"outcome"}
    assert "process_resident_memory_bytes" in known


def test_unknown_names_finds_a_renamed_metric_or_label() -> None:
    assert unknown_names('sum by (topic) (rate(watchkeeper_worker_messages_total'
                         '{job="w"}[5m]))') == []
    assert unknown_names("rate(watchkeeper_worker_message_total[5m])") == [
        "watchkeeper_worker_message_total"]
    assert unknown_names('watchkeeper_worker_events_total{reason="x"}') == [
        "watchkeeper_worker_events_total{reason}"]
    assert unknown_names("sum by (model_id) (watchkeeper_worker_signals_total)") == [
        "by/on (model_id)"]
    assert unknown_names("histogram_quantile(0.5, watchkeeper_worker_batch_seconds)") == [
        "watchkeeper_worker_batch_seconds"]


def test_dashboard_has_the_shape_grafana_imports() -> None:
    data = dashboard()
    assert 36 <= data["schemaVersion"] <= 41
    (variable,) = data["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus")
    everything = panels(data)
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in data["panels"] if p["type"] == "row"]
    assert rows == ["Ingest", "Detection", "Worker health", "Notifier", "API", "Processes",
                    "Targets"]
    shown = [p for p in everything if p["type"] != "row"]
    assert len(shown) == 22
    for panel in shown:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip()
    # no hard-coded datasource anywhere: every one in the file is the variable
    assert datasources(data) == [DATASOURCE] * (
        len(shown) + sum(len(p["targets"]) for p in shown))


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard()):
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        cells = {(g["x"] + dx, g["y"] + dy) for dx in range(g["w"]) for dy in range(g["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_dashboard_queries_only_exposed_metrics_and_labels() -> None:
    wrong = {expr: unknown_names(expr) for expr in dashboard_exprs() if unknown_names(expr)}
    assert wrong == {}


def test_dashboard_shows_every_watchkeeper_metric() -> None:
    histograms = {name.removesuffix("_bucket") for name in exposed()
                  if name.endswith("_bucket")}

    def family(name: str) -> str:  # a histogram's three series are one metric
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        return base if base in histograms else name

    metrics = {family(name) for name in exposed()
               if name.startswith("watchkeeper_") and not name.endswith("_created")}
    shown = {family(name) for expr in dashboard_exprs() for name in METRIC.findall(expr)}
    assert len(metrics) == 22 and metrics - shown == set()


EXPECTED_ALERTS = {
    "WatchkeeperWorkerNotReady", "WatchkeeperConsumerLagGrowing", "WatchkeeperConsumerLagHigh",
    "WatchkeeperCheckpointStale", "WatchkeeperWorkerStuck", "WatchkeeperRejectRateHigh",
    "WatchkeeperMonitorError", "WatchkeeperNotifierNotReady", "WatchkeeperOutboxGrowing",
    "WatchkeeperDeliveriesRefused", "WatchkeeperApiErrors", "WatchkeeperTargetDown"}


def test_every_rule_says_how_long_how_bad_and_what_to_do() -> None:
    found = rules()
    names = [rule["alert"] for rule in found]
    assert sorted(names) == sorted(EXPECTED_ALERTS)
    for rule in found:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "warning"}, rule["alert"]
        assert rule["labels"]["team"] == "watchkeeper", rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 100, rule["alert"]
    monitor_error = next(r for r in found if r["alert"] == "WatchkeeperMonitorError")
    assert monitor_error["labels"]["severity"] == "page"
    assert "not the model's on-call" in monitor_error["annotations"]["description"]


def test_rules_query_only_exposed_metrics_and_labels() -> None:
    wrong = {expr: unknown_names(expr) for expr in rule_exprs() if unknown_names(expr)}
    assert wrong == {}


def test_the_queries_the_rules_tell_on_call_to_run_work(tmp_path: Path) -> None:
    queries = [q for rule in rules() for q in re.findall(
        r'watchkeeper sql "([^"]+)"', " ".join(rule["annotations"]["description"].split()))]
    assert len(queries) == 4
    db = str(tmp_path / "wk.db")
    assert main(["db", "upgrade", "--db", db]) == 0
    for query in queries:  # a column or table that is not there fails with exit 2
        assert main(["sql", "--db", db, query]) == 0, query
    assert main(["sql", "--db", db, "SELECT channel FROM outbox"]) == 2


def test_scrape_example_uses_the_default_ports() -> None:
    data = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    targets = {job["job_name"]: job["static_configs"][0]["targets"]
               for job in data["scrape_configs"]}
    api_port = build_parser().parse_args(["api"]).port
    assert targets == {"watchkeeper-worker": [f"127.0.0.1:{WorkerSettings().web_port}"],
                       "watchkeeper-notifier": ["127.0.0.1:6067"],
                       "watchkeeper-api": [f"127.0.0.1:{api_port}"]}
    assert data["rule_files"] == [RULES.name]


def promtool(*args: str, cwd: Path) -> str:
    assert PROMTOOL is not None
    run = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@needs_promtool
def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    assert "SUCCESS: 12 rules found" in promtool("check", "rules", str(RULES), cwd=ROOT)
    assert "is valid prometheus config" in promtool("check", "config", str(SCRAPE), cwd=ROOT)


@needs_promtool
def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    # Grafana's $__rate_interval is no PromQL: a fixed range stands for it
    exprs = [e.replace("$__rate_interval", "1m") for e in dashboard_exprs()]
    group = {"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump({"groups": [group]}))
    assert f"SUCCESS: {len(exprs)} rules found" in promtool(
        "check", "rules", "dashboard.yml", cwd=tmp_path)


# The alerts on made-up series (promtool's unit tests, one sample a minute). promtool
# compares annotations exactly, so they run on a copy of the rules without them: this
# checks what fires when, with which labels; `promtool check rules` checks the templates.
W = 'job="watchkeeper-worker", instance="w1"'
W2 = 'job="watchkeeper-worker", instance="w2"'
N = 'job="watchkeeper-notifier", instance="n1"'
A = 'job="watchkeeper-api", instance="a1"'
ME = "job: watchkeeper-worker, instance: w1, reason: monitor_error"
ALERT_CASES = f"""
- name: worker not ready 2m
  input_series:
    - {{series: 'watchkeeper_worker_ready{{{W}}}', values: '1 1 0x8'}}
  expect:
    3m: {{WatchkeeperWorkerNotReady: []}}
    4m: {{WatchkeeperWorkerNotReady: [{{job: watchkeeper-worker, instance: w1}}]}}
- name: lag growing 10m and high 10m
  input_series:
    - {{series: 'watchkeeper_worker_consumer_lag{{{W}, topic="wk.predictions", partition="0"}}',
       values: '2000+100x20'}}
    - {{series: 'watchkeeper_worker_consumer_lag{{{W2}, topic="wk.predictions", partition="1"}}',
       values: '60000x20'}}
    - {{series: 'watchkeeper_worker_messages_total{{{W}, topic="wk.predictions"}}',
       values: '0+100x20'}}
    - {{series: 'watchkeeper_worker_messages_total{{{W2}, topic="wk.predictions"}}',
       values: '0+100x20'}}
  expect:
    9m: {{}}
    10m: {{WatchkeeperConsumerLagHigh: [{{job: watchkeeper-worker, instance: w2,
           topic: wk.predictions}}]}}
    11m:
      WatchkeeperConsumerLagGrowing:
        [{{job: watchkeeper-worker, instance: w1, topic: wk.predictions}}]
      WatchkeeperConsumerLagHigh:
        [{{job: watchkeeper-worker, instance: w2, topic: wk.predictions}}]
- name: checkpoint old while records wait, not while idle
  input_series:
    - {{series: 'watchkeeper_worker_checkpoint_age_seconds{{{W}, partition="0"}}',
       values: '0+60x10'}}
    - {{series: 'watchkeeper_worker_checkpoint_age_seconds{{{W}, partition="1"}}',
       values: '0+60x10'}}
    - {{series: 'watchkeeper_worker_consumer_lag{{{W}, topic="wk.outcomes", partition="0"}}',
       values: '0x10'}}
    - {{series: 'watchkeeper_worker_consumer_lag{{{W}, topic="wk.outcomes", partition="1"}}',
       values: '7x10'}}
  expect:
    5m: {{WatchkeeperCheckpointStale: []}}
    6m: {{WatchkeeperCheckpointStale: [{{job: watchkeeper-worker, instance: w1, partition: "1"}}]}}
- name: stuck, also when it never consumed a message
  input_series:
    - {{series: 'watchkeeper_worker_consumer_lag{{{W}, topic="wk.predictions", partition="0"}}',
       values: '5x30'}}
    - {{series: 'watchkeeper_worker_consumer_lag{{{W2}, topic="wk.predictions", partition="0"}}',
       values: '5x30'}}
    - {{series: 'watchkeeper_worker_messages_total{{{W2}, topic="wk.predictions"}}',
       values: '0+100x30'}}
  expect:
    9m: {{WatchkeeperWorkerStuck: []}}
    10m: {{WatchkeeperWorkerStuck: [{{job: watchkeeper-worker, instance: w1}}]}}
- name: rejects over 5% of events
  input_series:
    - {{series: 'watchkeeper_worker_events_total{{{W}, outcome="accepted"}}', values: '0+90x20'}}
    - {{series: 'watchkeeper_worker_events_total{{{W}, outcome="rejected"}}', values: '0+10x20'}}
    - {{series: 'watchkeeper_worker_events_total{{{W2}, outcome="accepted"}}', values: '0+99x20'}}
    - {{series: 'watchkeeper_worker_events_total{{{W2}, outcome="rejected"}}', values: '0+1x20'}}
  expect:
    10m: {{WatchkeeperRejectRateHigh: []}}
    11m: {{WatchkeeperRejectRateHigh: [{{job: watchkeeper-worker, instance: w1}}]}}
- name: the first monitor_error fires at once, and a later one again
  input_series:
    - {{series: 'watchkeeper_worker_rejected_total{{{W}, reason="monitor_error"}}',
       values: '_x5 1x25 2x5'}}
    - {{series: 'watchkeeper_worker_rejected_total{{{W}, reason="invalid_json"}}',
       values: '1+1x35'}}
  expect:
    4m: {{WatchkeeperMonitorError: []}}
    5m: {{WatchkeeperMonitorError: [{{{ME}}}]}}
    21m: {{WatchkeeperMonitorError: []}}
    31m: {{WatchkeeperMonitorError: [{{{ME}}}]}}
- name: notifier not ready 2m
  input_series:
    - {{series: 'watchkeeper_notifier_ready{{{N}}}', values: '0x5'}}
  expect:
    1m: {{WatchkeeperNotifierNotReady: []}}
    2m: {{WatchkeeperNotifierNotReady: [{{job: watchkeeper-notifier, instance: n1}}]}}
- name: outbox growing 15m, not one left waiting nor one that empties
  input_series:
    - {{series: 'watchkeeper_notifier_outbox_depth{{{N}}}', values: '1+1x30'}}
    - {{series: 'watchkeeper_notifier_outbox_depth{{job="watchkeeper-notifier", instance="n2"}}',
       values: '3x30'}}
    - {{series: 'watchkeeper_notifier_outbox_depth{{job="watchkeeper-notifier", instance="n3"}}',
       values: '1+1x10 0 1+1x19'}}
  expect:
    15m: {{WatchkeeperOutboxGrowing: []}}
    16m: {{WatchkeeperOutboxGrowing: [{{job: watchkeeper-notifier, instance: n1}}]}}
    26m: {{WatchkeeperOutboxGrowing: [{{job: watchkeeper-notifier, instance: n1}}]}}
- name: Slack refuses 10m
  input_series:
    - {{series: 'watchkeeper_notifier_deliveries_total{{{N}, outcome="refused"}}',
       values: '0+1x20'}}
    - {{series: 'watchkeeper_notifier_deliveries_total{{job="watchkeeper-notifier", instance="n2",
       outcome="sent"}}', values: '0+1x20'}}
  expect:
    10m: {{WatchkeeperDeliveriesRefused: []}}
    11m: {{WatchkeeperDeliveriesRefused: [{{job: watchkeeper-notifier, instance: n1}}]}}
- name: api 5xx over 5%
  input_series:
    - {{series: 'watchkeeper_api_requests_total{{{A}, method="GET", route="/", status="200"}}',
       values: '0+10x20'}}
    - {{series: 'watchkeeper_api_requests_total{{{A}, method="GET", route="/", status="503"}}',
       values: '0+10x20'}}
  expect:
    10m: {{WatchkeeperApiErrors: []}}
    11m: {{WatchkeeperApiErrors: [{{job: watchkeeper-api, instance: a1}}]}}
- name: a Watchkeeper target down, not another job's
  input_series:
    - {{series: 'up{{{A}}}', values: '0x5'}}
    - {{series: 'up{{job="node", instance="x"}}', values: '0x5'}}
  expect:
    1m: {{WatchkeeperTargetDown: []}}
    2m: {{WatchkeeperTargetDown: [{{job: watchkeeper-api, instance: a1}}]}}
"""


def promtool_tests() -> list[dict[str, Any]]:
    """ALERT_CASES as promtool's test file: every alert not named at a time is expected
    silent then too, and each firing one carries its rule's severity and team."""
    labels = {rule["alert"]: rule["labels"] for rule in rules()}
    tests = []
    for case in yaml.safe_load(textwrap.dedent(ALERT_CASES)):
        checks = []
        for at, alerts in case["expect"].items():
            for name in sorted(EXPECTED_ALERTS):
                fired = alerts.get(name, [])
                checks.append({"eval_time": at, "alertname": name, "exp_alerts": [
                    {"exp_labels": {**labels[name], **f}} for f in fired]})
        tests.append({"name": case["name"], "interval": "1m",
                      "input_series": case["input_series"], "alert_rule_test": checks})
    return tests


@needs_promtool
def test_the_alerts_fire_when_they_should_and_only_then(tmp_path: Path) -> None:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in data["groups"]:
        for rule in group["rules"]:
            del rule["annotations"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(data))
    tests = promtool_tests()
    assert {n for t in tests for c in t["alert_rule_test"] for n in [c["alertname"]]
            if c["exp_alerts"]} == EXPECTED_ALERTS  # every alert seen firing
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    assert "SUCCESS" in promtool("test", "rules", "tests.yml", cwd=tmp_path)
