"""The alert expression works in Prometheus itself: promtool, then a live query."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import PROVISIONING_DIR

OPERATORS = {"gt": ">", "lt": "<"}


def _alerts() -> list[dict[str, Any]]:
    """Prometheus alerting rules derived from the Grafana rules, the way exo-lab does."""
    (group,) = yaml.safe_load((PROVISIONING_DIR / "alerting/rules.yaml").read_text())["groups"]
    derived = []
    for rule in group["rules"]:
        by_ref = {q["refId"]: q for q in rule["data"]}
        condition = by_ref[rule["condition"]]
        query = by_ref[condition["model"]["expression"]]
        (evaluator,) = [c["evaluator"] for c in condition["model"]["conditions"]]
        comparison = f"{OPERATORS[evaluator['type']]} {evaluator['params'][0]}"
        derived.append(
            {
                "alert": rule["uid"],
                "expr": f"{query['model']['expr']} {comparison}",
                "for": rule["for"],
                "labels": rule["labels"],
            }
        )
    return derived


def _demand_queries() -> dict[str, str]:
    """refId → PromQL of the rules' queries that only carry values (not the condition's)."""
    (group,) = yaml.safe_load((PROVISIONING_DIR / "alerting/rules.yaml").read_text())["groups"]
    found: dict[str, str] = {}
    for rule in group["rules"]:
        by_ref = {q["refId"]: q for q in rule["data"]}
        used = {rule["condition"], by_ref[rule["condition"]]["model"]["expression"]}
        for ref, query in by_ref.items():
            if ref not in used:
                found[ref] = query["model"]["expr"]
    return found


def test_derived_rules_pass_promtool(tmp_path: Path) -> None:
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "autoscaling", "rules": _alerts()}]}))
    done = subprocess.run(
        ["promtool", "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 3 rules found" in done.stdout


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.loads(response.read()))


@pytest.mark.integration
def test_expressions_evaluate_on_a_running_prometheus(tmp_path: Path, free_port: int) -> None:
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "prometheus",
                        "static_configs": [{"targets": [f"127.0.0.1:{free_port}"]}],
                    }
                ],
            }
        )
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{free_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(f"{base}/api/v1/status/buildinfo")["status"] == "success":
                    break
            except OSError:
                pass
            assert process.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, "prometheus did not start"
            time.sleep(0.2)
        for alert in _alerts():
            for expr in (alert["expr"], alert["expr"].rsplit(" ", 2)[0]):
                answer = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
                assert answer["status"] == "success", answer
                assert answer["data"]["resultType"] == "vector"
        # Without any slow-web series (this Prometheus scrapes only itself), every demand query
        # still answers one sample without labels: Grafana would otherwise call the whole
        # rule NoData. 0 is the "unknown" the scaler falls back on; evaluated_at is the query's
        # own evaluation time.
        demand = _demand_queries()
        # (`cpu` is the shedding rule's value query: the CPU rules' condition, guarded there)
        assert set(demand) == {"cpu", "arrivals", "cpu_per_request", "serving", "evaluated_at"}
        for ref, expr in demand.items():
            at = time.time()
            answer = _get(
                f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
            )
            assert answer["data"]["resultType"] == "vector", ref
            ((sample),) = answer["data"]["result"]
            assert sample["metric"] == {}, ref
            value = float(sample["value"][1])
            assert value == (round(at, 3) if ref == "evaluated_at" else 0.0), (ref, value)
        bad = urllib.parse.urlencode({"query": "100 * (1 - avg(rate(x[1m]))"})
        with pytest.raises(urllib.error.HTTPError):
            _get(f"{base}/api/v1/query?{bad}")
    finally:
        process.terminate()
        process.wait(timeout=30)
