"""Outputs parsing, the CLI's boundary, the one price table, and verify's checks against real
loopback servers answering as Grafana, Prometheus and the NLB do."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from exo_lab.deployment.background import UpConfig
from exo_lab.deployment.cost import cost_estimate, load_prices, run_cost
from exo_lab.deployment.outputs import (
    Deployment,
    Output,
    OutputsError,
    masked,
    parse_terraform_json,
    to_terraform_json,
)
from exo_lab.deployment.verify import (
    FAIL,
    PASS,
    Provisioned,
    Target,
    check_grafana_contact_point,
    check_grafana_dashboard,
    check_grafana_rules,
    check_nlb_health,
    check_prometheus_targets,
)
from exo_lab.stack.settings import LabError

REPO = Path(__file__).resolve().parents[3]
PROVISIONING = REPO / "grafana-provisioning"

# What `terraform output -json` prints (abridged from a plan of infra/terraform).
TERRAFORM_JSON = {
    "app_url": {"sensitive": False, "type": "string", "value": "http://198.51.100.7/"},
    "instance_pool_id": {"sensitive": False, "type": "string", "value": "p-1"},
    "scaler_token": {"sensitive": True, "type": "string", "value": "s3cret-token"},
    "cost_estimate_eur_per_hour": {
        "sensitive": False,
        "type": ["object", {"pool_member": "number"}],
        "value": {"pool_member": 0.0104},
    },
}


def test_terraform_output_json_round_trip_and_masking() -> None:
    outputs = parse_terraform_json(json.dumps(TERRAFORM_JSON))
    assert outputs["scaler_token"] == Output("s3cret-token", sensitive=True)
    assert json.loads(to_terraform_json(outputs)) == TERRAFORM_JSON
    lines = masked(outputs)
    assert "scaler_token = <sensitive>" in lines
    assert not any("s3cret" in line for line in lines)
    # Terraform leaves null outputs out of `output -json`; so do we.
    assert "grafana_url" not in json.loads(to_terraform_json({"grafana_url": Output(None)}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"app_url": "http://x/"}', 'has no "value"'),
    ],
)
def test_bad_outputs_are_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(OutputsError, match=message):
        parse_terraform_json(text)


def test_missing_outputs_name_the_flag() -> None:
    deployment = Deployment.of(parse_terraform_json(json.dumps(TERRAFORM_JSON)))
    with pytest.raises(OutputsError, match=r"prometheus_url \(or --prometheus-url\)"):
        deployment.require(
            ("app_url", "prometheus_url"), hint={"prometheus_url": "--prometheus-url"}
        )
    assert Deployment.of({}, {"app_url": "http://x"}).app_url == "http://x/"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exo_lab", *args],
        cwd=REPO, input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("verify", "--outputs", "-"), json.dumps(TERRAFORM_JSON), "missing outputs:"),
        (("verify", "--outputs", "-"), "{", "is not JSON"),
        (("verify", "--outputs", "/nonexistent.json"), "", "cannot read /nonexistent.json"),
        (("run", "--target", "-"), json.dumps(TERRAFORM_JSON), "EXOSCALE_API_KEY"),
    ],
)
def test_outputs_that_describe_no_deployment_are_usage_errors(
    args: tuple[str, ...], stdin: str, message: str
) -> None:
    result = cli(*args, stdin=stdin)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("Usage: exo-lab ")
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_up_runs_the_timing_model_it_is_given(tmp_path: Path) -> None:
    assert UpConfig().settings(tmp_path).timings.model == "realistic"
    fast = UpConfig(timing_model="fast").settings(tmp_path).timings
    assert (fast.model, fast.member.provisioning_most) == ("fast", 0)
    with pytest.raises(LabError, match="timing model must be one of"):
        UpConfig(timing_model="instant").settings(tmp_path)
    refused = cli("up", "--state-dir", str(tmp_path / "up"), "--timing-model", "instant")
    assert refused.returncode == 2 and "'instant' is not one of" in refused.stderr
    assert not (tmp_path / "up").exists()


def test_one_price_table_gives_terraforms_figures() -> None:
    """docs/operations.md §6 computes these from the same table Terraform reads."""
    prices = load_prices(REPO / "infra" / "terraform" / "prices.json")
    estimate = cost_estimate(prices, "standard.micro", min_size=1, initial_size=1, max_size=4)
    assert estimate["pool_member"] == pytest.approx(0.0104)
    assert estimate["monitor_and_nlb"] == pytest.approx(0.0544)
    assert estimate["at_min_size"] == pytest.approx(0.0648)
    assert estimate["at_max_size"] == pytest.approx(0.0960)
    assert "prices.json" in (REPO / "infra" / "terraform" / "outputs.tf").read_text()
    cost = run_cost(estimate, instance_seconds=7200, run_seconds=3600)
    assert cost["total_eur"] == pytest.approx(2 * 0.0104 + 0.0544)


# -- checks against loopback servers -------------------------------------------------------


class Canned(ThreadingHTTPServer):
    routes: dict[str, tuple[int, Any]]
    seen: list[dict[str, str]]


class Handler(BaseHTTPRequestHandler):
    server: Canned

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.server.seen.append(dict(self.headers))
        status, body = self.server.routes.get(path, (404, {"message": "not found"}))
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Canned]:
    httpd = Canned(("127.0.0.1", 0), Handler)
    httpd.routes, httpd.seen = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def target_at(server: Canned, **values: Any) -> Target:
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    deployment = Deployment({
        "app_url": base, "prometheus_url": base, "grafana_url": base,
        "grafana_admin_password": "pw", "instance_pool_id": "p-1", **values,
    })  # fmt: skip
    return Target(deployment, Provisioned.load(PROVISIONING), admin=None)


def test_nlb_health_wants_ok(server: Canned) -> None:
    server.routes["/health"] = (200, "OK")
    assert check_nlb_health(target_at(server)).status == PASS
    server.routes["/health"] = (503, "DRAINING")
    check = check_nlb_health(target_at(server))
    assert check.status == FAIL and "503" in check.detail


def test_grafana_checks_read_grafanas_api(server: Canned) -> None:
    provisioned = Provisioned.load(PROVISIONING)
    server.routes["/api/v1/provisioning/alert-rules"] = (
        200, [{"uid": r.uid, "title": r.title} for r in provisioned.rules])  # fmt: skip
    server.routes["/api/v1/provisioning/contact-points"] = (
        200, [{"name": n, "type": "webhook"} for n in provisioned.contact_points])  # fmt: skip
    server.routes["/api/search"] = (
        200, [{"uid": d["uid"], "title": d["title"], "type": "dash-db"}
              for d in provisioned.dashboards])  # fmt: skip
    t = target_at(server)
    for check in (check_grafana_rules, check_grafana_contact_point, check_grafana_dashboard):
        result = check(t)
        assert result.status == PASS, result
        assert result.stand_in == ""
    assert all(h.get("Authorization", "").startswith("Basic ") for h in server.seen)

    server.routes["/api/v1/provisioning/alert-rules"] = (200, [])
    server.routes["/api/v1/provisioning/contact-points"] = (401, {"message": "invalid API key"})
    server.routes["/api/search"] = (200, [])
    rules = check_grafana_rules(t)
    assert rules.status == FAIL and provisioned.rules[0].uid in rules.detail
    assert "401" in check_grafana_contact_point(t).detail
    assert "Autoscaling" in check_grafana_dashboard(t).detail


def test_prometheus_targets_must_equal_the_members(server: Canned) -> None:
    def target(address: str, health: str = "up") -> dict[str, Any]:
        return {"labels": {"job": "pool", "instance": f"{address}:9100"}, "health": health,
                "lastError": "" if health == "up" else "connection refused"}  # fmt: skip

    t = target_at(server)
    t.members = [
        {"id": x, "name": f"web-{x}", "public-ip": f"10.0.0.{n}", "state": "running"}
        for n, x in ((1, "a"), (2, "b"))
    ]
    server.routes["/api/v1/targets"] = (
        200, {"data": {"activeTargets": [target("10.0.0.1"), target("10.0.0.2")]}})  # fmt: skip
    assert check_prometheus_targets(t).status == PASS
    broken = [target("10.0.0.1", "down"), target("10.0.0.9")]
    server.routes["/api/v1/targets"] = (200, {"data": {"activeTargets": broken}})
    detail = check_prometheus_targets(t).detail
    assert "not scraped: 10.0.0.2" in detail
    assert "not members: 10.0.0.9" in detail
    assert "down: 10.0.0.1 (connection refused)" in detail
