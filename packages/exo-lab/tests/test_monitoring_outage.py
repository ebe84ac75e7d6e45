"""A monitoring outage mid-run, and Grafana's NoData alert reaching the webhook through the real
Prometheus and Alertmanager (sped up 20×, bounded waits)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
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
    alertmanager_config,
    grafana_environment,
    load_rules,
    load_webhook_route,
    notifier_credentials,
    prometheus_rule_file,
)
from exo_lab.stack.outage import MonitoringOutage, OutageDriver, without_member_targets
from exo_lab.stack.processes import ChildProcesses, find_binary, free_port, wait_for
from exo_lab.stack.settings import LabSettings

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"
SPEED = 20.0


# --- the option and the driver -----------------------------------------------------------------


def test_outage_parses_start_and_duration() -> None:
    assert MonitoringOutage.parse("600:300") == MonitoringOutage(600, 300, "exporters")
    assert MonitoringOutage.parse("0:60", "prometheus").kind == "prometheus"
    for bad in ("600", "a:b", "600:0", "-1:10"):
        with pytest.raises(ValueError, match="START:DURATION"):
            MonitoringOutage.parse(bad)
    with pytest.raises(ValueError, match="kind"):
        MonitoringOutage(1, 1, "grafana")


class FakeStack:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.configs: list[dict[str, Any]] = []

    def driver(self, outage: MonitoringOutage, config: dict[str, Any]) -> OutageDriver:
        return OutageDriver(
            outage,
            10.0,
            config=config,
            write_config=self.configs.append,
            prometheus_pid=lambda: None,
            stop_prometheus=lambda: self.events.append("stop"),
            start_prometheus=lambda: self.events.append("start"),
            say=self.events.append,
        )


def test_prometheus_outage_stops_and_starts_prometheus_at_lab_times() -> None:
    """START and DURATION are production seconds: at speed 10, 600:300 is lab 60 s to 90 s."""
    fake = FakeStack()
    driver = fake.driver(MonitoringOutage(600, 300, "prometheus"), {"scrape_configs": []})
    for t in (0.0, 59.0):
        driver.tick(t)
    assert fake.events == []
    driver.tick(60.0)
    driver.tick(75.0)
    assert [e for e in fake.events if e in ("stop", "start")] == ["stop"]
    driver.tick(90.0)
    driver.tick(120.0)
    driver.restore()  # idempotent: the run calls it again at its end
    assert [e for e in fake.events if e in ("stop", "start")] == ["stop", "start"]
    assert any("monitoring outage:" in e for e in fake.events)  # the run says so
    assert fake.configs == []


def test_exporters_outage_drops_member_targets_and_gives_them_back(tmp_path: Path) -> None:
    settings = LabSettings(out=tmp_path, speed=SPEED)
    ports = render.StackPorts(alertmanager=1, prometheus=2, scaler=3, sd_metrics=4)
    files = render.StackFiles(tmp_path)
    config = render.prometheus_config(settings, files, ports, 10)
    fake = FakeStack()
    driver = fake.driver(MonitoringOutage(0, 10, "exporters"), config)
    driver.tick(0.0)
    (down,) = fake.configs
    jobs = {job["job_name"]: job for job in down["scrape_configs"]}
    for name in ("pool", "slow-web"):
        assert jobs[name]["relabel_configs"][-1]["action"] == "drop"
    assert "relabel_configs" not in jobs["exo-scaler"]  # the rest is still scraped
    driver.tick(1.0)
    assert fake.configs[-1] == config  # restored as it was
    # The outage config is one Prometheus accepts.
    (tmp_path / "targets.json").write_text("[]")
    (tmp_path / "rules.yml").write_text("groups: []\n")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(without_member_targets(config)))
    check = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- ${VAR} credentials: silent on Grafana, loud in the lab ------------------------------------


def test_unset_token_variable_sends_no_authorization_and_is_said_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    route = load_webhook_route(PROVISIONING)
    path = tmp_path / "creds"
    with caplog.at_level(logging.WARNING):
        written, warning = notifier_credentials(route, {"SCALER_TOKEN": "x"}, path)
    assert written is None and not path.exists()
    assert "unset: EXO_SCALER_TOKEN" in warning and "401" in warning
    assert warning in caplog.text
    body = alertmanager_config(route, scaler_base_url="http://127.0.0.1:1", credentials_file=None)
    # grafana/alerting receivers/webhook/webhook.go: no credentials, no Authorization header.
    assert "http_config" not in body["receivers"][0]["webhook_configs"][0]
    written, warning = notifier_credentials(route, grafana_environment("t0k"), path)
    assert (written, warning) == (path, "") and path.read_text() == "t0k"
    assert path.stat().st_mode & 0o777 == 0o600


# --- end to end: the real binaries ------------------------------------------------------------


class Exporter(BaseHTTPRequestHandler):
    """A pool member's node_exporter at a steady 50 % CPU (idle grows 0.5 s per second)."""

    started = time.monotonic()

    def do_GET(self) -> None:
        idle = (time.monotonic() - self.started) * 0.5
        body = f'node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle}\n'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


class Receiver(BaseHTTPRequestHandler):
    """The webhook: records every notification with its Authorization header."""

    received: list[tuple[str, str, dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        self.received.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    Receiver.received = []
    exporter, exporter_port = serve(Exporter)
    receiver, receiver_port = serve(Receiver)
    yield exporter_port, receiver_port
    for server in (exporter, receiver):
        server.shutdown()
        server.server_close()


def nodata_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "provisioning"
    shutil.copytree(PROVISIONING, copy)
    rules = copy / "alerting" / "rules.yaml"
    rules.write_text(rules.read_text().replace("noDataState: OK", "noDataState: NoData"))
    return copy


def no_data_alerts() -> list[dict[str, Any]]:
    return [
        alert
        for _, _, body in Receiver.received
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == "DatasourceNoData" and alert["status"] == "firing"
    ]


def test_nodata_alert_reaches_the_webhook_when_the_exporters_go(
    tmp_path: Path, servers: tuple[int, int]
) -> None:
    prometheus, alertmanager = (
        find_binary("prometheus"),
        find_binary("prometheus-alertmanager", "alertmanager"),
    )
    assert prometheus and alertmanager, "the Debian packages prometheus and prometheus-alertmanager"
    exporter_port, receiver_port = servers
    provisioning = nodata_copy(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    settings = LabSettings(out=out, speed=SPEED)
    files = render.StackFiles(out)
    ports = render.StackPorts(free_port(), free_port(), receiver_port, free_port())
    rules = load_rules(provisioning)
    assert {r.no_data_state for r in rules} == {"NoData"}
    route = load_webhook_route(provisioning)
    credentials, _ = notifier_credentials(route, grafana_environment("t0k"), out / "creds")
    files.targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{exporter_port}"]}]))
    files.rules.write_text(yaml.safe_dump(prometheus_rule_file(rules, SPEED)))
    am = alertmanager_config(
        route,
        scaler_base_url=f"http://127.0.0.1:{receiver_port}",
        credentials_file=credentials,
        speed=SPEED,
    )
    files.alertmanager_config.write_text(yaml.safe_dump(am))
    config = render.prometheus_config(settings, files, ports, rules[0].evaluation_interval)
    files.prometheus_config.write_text(yaml.safe_dump(config))
    children = ChildProcesses(out / "logs")
    base = f"http://127.0.0.1:{ports.prometheus}"
    try:
        children.start(
            "alertmanager", render.alertmanager_command(alertmanager, files, ports.alertmanager)
        )
        prom = children.start(
            "prometheus", render.prometheus_command(prometheus, settings, files, ports.prometheus)
        )
        query = {"query": f"({rules[0].expr.replace('[1m]', '[3s]')})"}

        def cpu_known() -> bool:
            children.check_alive()
            result = httpx.get(f"{base}/api/v1/query", params=query, timeout=2).json()
            return bool(result["data"]["result"])

        wait_for(cpu_known, "Prometheus computing the pool's CPU", 60, interval=0.25)
        time.sleep(2.0)  # several evaluations with data: no NoData alert may come
        assert no_data_alerts() == []

        driver = OutageDriver(
            MonitoringOutage(0, 3600, "exporters"),
            SPEED,
            config=config,
            write_config=lambda c: files.prometheus_config.write_text(yaml.safe_dump(c)),
            prometheus_pid=lambda: prom.process.pid,
            stop_prometheus=lambda: None,
            start_prometheus=lambda: None,
        )
        driver.tick(0.0)
        wait_for(lambda: len({a["labels"]["action"] for a in no_data_alerts()}) == 2,
                 "DatasourceNoData for both rules at the webhook", 60, interval=0.25)  # fmt: skip
        by_action = {a["labels"]["action"]: a for a in no_data_alerts()}
        # The CPU rules go NoData; the shedding rule's queries are all guarded (`or vector(0)`).
        for rule in (r for r in rules if "trigger" not in r.labels):
            labels = by_action[rule.action]["labels"]
            # compat.go noDataAlert: rulename = the rule's title; eval.go: datasource_uid, ref_id.
            assert labels["rulename"] == rule.title
            assert (labels["datasource_uid"], labels["ref_id"]) == ("exo-prometheus", "cpu")
            assert labels["grafana_folder"] == "Autoscaling"
        paths_and_auth = {(path, auth) for path, auth, _ in Receiver.received}
        assert paths_and_auth == {("/webhook", "Bearer t0k")}

        driver.restore()

        def nodata_resolved() -> bool:
            alerts = httpx.get(f"{base}/api/v1/alerts", timeout=2).json()["data"]["alerts"]
            return not [a for a in alerts if a["labels"]["alertname"] == "DatasourceNoData"]

        wait_for(nodata_resolved, "DatasourceNoData resolved once the exporters are back", 60)
    finally:
        children.stop_all()
