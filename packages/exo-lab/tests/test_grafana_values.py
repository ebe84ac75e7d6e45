"""The demand signals travel as `value_<refId>` annotations, as Grafana's `values` carry them.

First with `promtool test rules` (synthetic series, exact numbers), then end to end: real
Prometheus scraping a real slow-web under a bounded load, real Alertmanager, a webhook receiver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exo_lab.stack import render
from exo_lab.stack.grafana import (
    ProvisioningError,
    ScalingRule,
    ValueQuery,
    alertmanager_config,
    load_rules,
    load_webhook_route,
    prometheus_rule_file,
    query_template,
)
from exo_lab.stack.processes import ChildProcesses, find_binary, free_port, wait_for
from exo_lab.stack.settings import LabSettings
from exo_testkit import free_member_network

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"
BUSY = 'node_cpu_seconds_total{mode="idle",job="pool",instance="127.0.1.1:9100"}'
DEMAND = ("arrivals", "cpu_per_request", "serving", "evaluated_at")
REQUESTS = "slow_web_requests_total"


def web(metric: str, member: int, **labels: str) -> str:
    pairs = ",".join(
        f'{k}="{v}"' for k, v in {"job": "slow-web", "instance": f"127.0.1.{member}:8080",
                                   **labels}.items()
    )  # fmt: skip
    return f"{metric}{{{pairs}}}"


def promtool_test(
    tmp_path: Path,
    rules: list[ScalingRule],
    series: list[Any],
    checks: Any,
    exprs: list[dict[str, Any]] | None = None,
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(prometheus_rule_file(rules)))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "10s",
        "tests": [
            {
                "interval": "10s",
                "input_series": series,
                "alert_rule_test": checks,
                **({"promql_expr_test": exprs} if exprs else {}),
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    run = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def scale_up(rules: list[ScalingRule]) -> ScalingRule:
    """The CPU rule that scales up (the shedding rule has the same action, another trigger)."""
    (rule,) = [r for r in rules if r.action == "scale_up" and "trigger" not in r.labels]
    return rule


def test_value_queries_come_from_the_grafana_rule() -> None:
    grafana = yaml.safe_load((PROVISIONING / "alerting" / "rules.yaml").read_text())
    for rule, source in zip(load_rules(PROVISIONING), grafana["groups"][0]["rules"], strict=True):
        exprs = {q["refId"]: q["model"]["expr"] for q in source["data"] if "expr" in q["model"]}
        # the shedding rule's condition reads the shed rate: the CPU value rides along
        refs = ("cpu", *DEMAND) if rule.ref_id != "cpu" else DEMAND
        assert [v.ref_id for v in rule.value_queries] == list(refs)
        assert {v.ref_id: v.expr for v in rule.value_queries} == {r: exprs[r] for r in refs}
        assert {v.datasource_uid for v in rule.value_queries} == {"exo-prometheus"}


def test_annotations_carry_the_demand_at_evaluation(tmp_path: Path) -> None:
    """Two members serve 10/s and 5/s, one sheds 3/s, the work costs 0.75 CPU-s/s; a third
    target is not up. At 3m the CPU rule fires with exactly what Grafana's `values` would hold."""
    series = [
        {"series": BUSY, "values": "0+0x30"},  # idle never grows: 100 % CPU
        {"series": web(REQUESTS, 1, route="/", status="200"), "values": "0+100x30"},
        {"series": web(REQUESTS, 2, route="/", status="200"), "values": "0+50x30"},
        # Not work: health checks and refused parameters never count as arrivals.
        {"series": web(REQUESTS, 1, route="/health", status="200"), "values": "0+900x30"},
        {"series": web(REQUESTS, 1, route="/", status="400"), "values": "0+70x30"},
        {"series": web("slow_web_shed_total", 1, route="/"), "values": "0+30x30"},
        {"series": web("slow_web_work_cpu_seconds_total", 1), "values": "0+5x30"},
        {"series": web("slow_web_work_cpu_seconds_total", 2), "values": "0+2.5x30"},
        {"series": web("up", 1), "values": "1x30"},
        {"series": web("up", 2), "values": "1x30"},
        {"series": web("up", 3), "values": "0x30"},
    ]  # fmt: skip
    rule = scale_up(load_rules(PROVISIONING))
    expected = {
        **rule.annotations,
        "value": "100",
        "value_cpu": "100.000000",
        "value_arrivals": "18.000000",  # 10 + 5 served + 3 shed
        "value_cpu_per_request": "0.050000",  # 0.75 CPU-s/s ÷ 15 served/s
        "value_serving": "2.000000",
        "value_evaluated_at": "180.000000",  # the evaluation's own time
    }
    checks = [
        {
            "eval_time": "3m",
            "alertname": "exo_pool_cpu_high",
            "exp_alerts": [{"exp_labels": {"action": "scale_up"}, "exp_annotations": expected}],
        }
    ]
    promtool_test(tmp_path, [rule], series, checks)


def test_the_shedding_rule_fires_before_the_cpu_rule_with_the_whole_step(tmp_path: Path) -> None:
    """A load step at 2m on one idle member: from then it serves 5/s at 100 % CPU and sheds
    9/s. The shedding rule (for: 30s) is pending from the first evaluation that sees a shed
    (2m20s) and fires at 2m50s, carrying the whole step in `arrivals` (14/s: the 30 s window;
    the minute's still averages the quiet before) and the CPU value as `value_cpu`. The CPU
    rule (for: 1m) on the same CPU is still pending then. A member that sheds nothing never
    fires it, at any CPU."""

    def series(shed: str) -> list[dict[str, str]]:
        return [
            {"series": BUSY, "values": "0+10x12 120x18"},  # idle until the step, then 100 %
            {"series": web(REQUESTS, 1, route="/", status="200"), "values": "0x12 0+50x18"},
            {"series": web("slow_web_shed_total", 1, route="/"), "values": shed},
            {"series": web("slow_web_work_cpu_seconds_total", 1), "values": "0x12 0+2.5x18"},
            {"series": web("up", 1), "values": "1x30"},
        ]

    rules = load_rules(PROVISIONING)
    (shedding,) = [r for r in rules if r.labels.get("trigger") == "shedding"]
    labels = {"action": "scale_up", "trigger": "shedding"}
    fired = {
        **shedding.annotations,
        "value": "6",  # the condition's input: the shed rate over the minute
        "value_shed": "6.000000",
        "value_cpu": "83.333333",  # the minute's average, the quiet before the step in it
        "value_arrivals": "14.000000",  # 5 served + 9 shed: the 30 s window's, the whole step
        "value_cpu_per_request": "0.050000",
        "value_serving": "1.000000",
        "value_evaluated_at": "170.000000",
    }
    checks = [
        {"eval_time": t, "alertname": "exo_pool_shedding", "exp_alerts": []}
        for t in ("2m", "2m20s", "2m40s")
    ] + [
        {
            "eval_time": "2m50s",
            "alertname": "exo_pool_shedding",
            "exp_alerts": [{"exp_labels": labels, "exp_annotations": fired}],
        },
        {"eval_time": "2m50s", "alertname": "exo_pool_cpu_high", "exp_alerts": []},
    ]
    # ... and the CPU rule is pending then, not idle: it would fire, a minute later.
    pending = {
        "expr": 'ALERTS{alertname="exo_pool_cpu_high"}',
        "eval_time": "2m50s",
        "exp_samples": [
            {
                "labels": 'ALERTS{alertname="exo_pool_cpu_high",alertstate="pending",'
                'action="scale_up"}',
                "value": 1,
            }
        ],
    }
    promtool_test(tmp_path, [shedding, scale_up(rules)], series("0x12 0+90x18"), checks, [pending])
    quiet = [{"eval_time": t, "alertname": "exo_pool_shedding", "exp_alerts": []}
             for t in ("2m20s", "2m50s", "4m")]  # fmt: skip
    promtool_test(tmp_path, [shedding], series("0x30"), quiet)


def test_a_value_query_without_data_silences_the_rule_as_in_grafana(tmp_path: Path) -> None:
    """eval.go: one query of the rule without data makes the whole rule NoData. With the
    provisioned noDataState OK the CPU alert stops; with NoData a DatasourceNoData names the
    query. That is why every provisioned value query is guarded with `or vector(0)`."""
    unguarded = ValueQuery("serving", 'count(up{job="slow-web"} == 1)', "exo-prometheus")
    rule = dataclasses.replace(scale_up(load_rules(PROVISIONING)), value_queries=(unguarded,))
    series = [{"series": BUSY, "values": "0+0x30"}]  # CPU at 100 %, no slow-web target at all
    silent = [{"eval_time": "3m", "alertname": "exo_pool_cpu_high", "exp_alerts": []}]
    promtool_test(tmp_path, [rule], series, silent)
    no_data = dataclasses.replace(rule, no_data_state="NoData")
    named = [
        *silent,
        {
            "eval_time": "3m",
            "alertname": "DatasourceNoData",
            "exp_alerts": [
                {
                    "exp_labels": {
                        "action": "scale_up",
                        "rulename": rule.title,
                        "grafana_folder": "Autoscaling",
                        "datasource_uid": "exo-prometheus",
                        "ref_id": "serving",
                    },
                    "exp_annotations": dict(rule.annotations),
                }
            ],
        },
    ]
    promtool_test(tmp_path, [no_data], series, named)


def test_a_value_query_with_a_backquote_is_refused() -> None:
    assert query_template('sum(x{a="b"})').startswith('{{ with query `sum(x{a="b"})` }}')
    with pytest.raises(ProvisioningError, match="backquote"):
        query_template("sum(x{a=`b`})")


# --- end to end: real slow-web, Prometheus and Alertmanager ------------------------------------

SPEED = 10.0


class BusyExporter(BaseHTTPRequestHandler):
    """A member's node_exporter at 100 % CPU (idle never grows), so the scale-up rule fires."""

    def do_GET(self) -> None:
        body = b'node_cpu_seconds_total{cpu="0",mode="idle"} 5\n'
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def member_address() -> str:
    """A loopback address of its own: slow-web on :8080 and the exporter on :9100, as a member."""
    return free_member_network().rsplit(".", 1)[0] + ".1"


@pytest.fixture
def receiver() -> Iterator[int]:
    Receiver.received = []
    server = serve(Receiver, "127.0.0.1", 0)
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def offer_load(url: str, rps: float, stop: threading.Event, limit: float) -> None:
    """Open-loop-ish: one request every 1/rps s (each on its own short timeout), until `stop`
    or `limit` seconds — bounded either way."""
    deadline = time.monotonic() + limit
    with httpx.Client(timeout=2.0) as client:
        next_at = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                client.get(url, params={"ms": "5"})
            next_at += 1.0 / rps
            stop.wait(max(0.0, next_at - time.monotonic()))


@pytest.mark.integration
def test_firing_alert_reaches_the_webhook_with_the_demand(
    tmp_path: Path, member_address: str, receiver: int
) -> None:
    prometheus = find_binary("prometheus")
    alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
    beside = Path(sys.executable).parent / "slow-web"  # the venv's console script
    slow_web = str(beside) if beside.exists() else find_binary("slow-web")
    assert slow_web, "slow-web is installed (make venv)"
    assert prometheus and alertmanager, "the Debian packages prometheus and prometheus-alertmanager"
    out = tmp_path / "run"
    out.mkdir()
    settings = LabSettings(out=out, speed=SPEED)
    files = render.StackFiles(out)
    ports = render.StackPorts(free_port(), free_port(), receiver, free_port())
    rules = load_rules(PROVISIONING)
    route = load_webhook_route(PROVISIONING)
    files.targets.write_text(json.dumps([{"targets": [f"{member_address}:9100"]}]))
    files.rules.write_text(yaml.safe_dump(prometheus_rule_file(rules, SPEED)))
    am = alertmanager_config(
        route, scaler_base_url=f"http://127.0.0.1:{receiver}", credentials_file=None, speed=SPEED
    )
    files.alertmanager_config.write_text(yaml.safe_dump(am))
    config = render.prometheus_config(settings, files, ports, rules[0].evaluation_interval)
    files.prometheus_config.write_text(yaml.safe_dump(config))
    exporter = serve(BusyExporter, member_address, 9100)
    children = ChildProcesses(out / "logs")
    stop = threading.Event()
    started = time.time()
    try:
        web_url = f"http://{member_address}:8080/"
        children.start(
            "slow-web",
            [slow_web, "serve", "--host", member_address, "--port", "8080", "--workers", "1",
             "--work-ms", "5"],
        )  # fmt: skip
        wait_for(lambda: httpx.get(web_url + "health", timeout=1).text == "OK", "slow-web", 30)
        load = threading.Thread(target=offer_load, args=(web_url, 20.0, stop, 90.0), daemon=True)
        load.start()
        children.start(
            "alertmanager", render.alertmanager_command(alertmanager, files, ports.alertmanager)
        )
        children.start(
            "prometheus", render.prometheus_command(prometheus, settings, files, ports.prometheus)
        )

        def up_alert() -> dict[str, Any] | None:
            children.check_alive()
            for body in Receiver.received:
                for alert in body["alerts"]:
                    annotations = alert["annotations"]
                    # The first notifications may predate a served request in the window.
                    if alert["labels"].get("action") == "scale_up" and float(
                        annotations.get("value_cpu_per_request", "0")
                    ):
                        return dict(annotations)
            return None

        wait_for(up_alert, "a scale-up notification with a measured demand", 90, interval=0.25)
        annotations = up_alert()
        assert annotations is not None
    finally:
        stop.set()
        children.stop_all()
        exporter.shutdown()
        exporter.server_close()
    # Every value of Grafana's `values`, as decimal strings.
    assert {f"value_{ref}" for ref in ("cpu", *DEMAND)} <= set(annotations)
    values = {ref: float(annotations[f"value_{ref}"]) for ref in ("cpu", *DEMAND)}
    assert values["cpu"] == pytest.approx(100.0)
    assert 5.0 <= values["arrivals"] <= 30.0, values  # 20/s offered, over a 6 s window
    assert 0.004 <= values["cpu_per_request"] <= 0.02, values  # 5 ms of work per request
    assert values["serving"] == 1.0
    assert started <= values["evaluated_at"] <= time.time()
    assert "." in annotations["value_evaluated_at"]  # a decimal, never 1.76e+09


def test_every_job_the_rules_query_is_scraped_in_the_lab_and_on_exoscale(tmp_path: Path) -> None:
    """The rules read `job="pool"` (node_exporter) and `job="slow-web"` (slow-web's /metrics):
    both Prometheus configs — the lab's (render.py) and the monitor's (the Terraform template)
    — must scrape a job of each name, or a demand query answers its `or vector(0)` forever."""
    used = {
        job
        for rule in load_rules(PROVISIONING)
        for expr in (rule.expr, *(v.expr for v in rule.value_queries))
        for job in re.findall(r'job="([^"]+)"', expr)
    }
    assert used == {"pool", "slow-web"}
    settings = LabSettings(out=tmp_path)
    lab = render.prometheus_config(
        settings, render.StackFiles(tmp_path), render.StackPorts(1, 2, 3, 4), 10
    )
    template = PROVISIONING.parent / "infra/terraform/modules/cloud-init/templates"
    monitor = yaml.safe_load((template / "prometheus.yml.tftpl").read_text())
    for config in (lab, monitor):
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        assert used <= set(jobs)
        # slow-web: exo-sd's member targets with the port swapped to slow-web's 8080.
        (relabel,) = jobs["slow-web"]["relabel_configs"]
        assert (relabel["target_label"], relabel["replacement"]) == ("__address__", "$1:8080")
        assert jobs["slow-web"]["file_sd_configs"] == jobs["pool"]["file_sd_configs"]
