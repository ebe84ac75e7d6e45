"""The notification policy re-sends a firing alert at least once per scaler tick: measured on
the real Alertmanager (Debian's prometheus-alertmanager), every duration divided by SPEED."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import PROVISIONING_DIR
from test_grafana_constraints import earliest_repeat, effective_repeat, seconds

SPEED = 20
TICK = 60  # exo-scaler's --interval
NOTIFICATIONS = 7


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("status") == "firing":
            self.server.arrivals.append(time.monotonic())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not found:
        pytest.fail("Alertmanager is not installed (make system-packages installs it)")
    return found


def _scaled(text: str) -> str:
    return f"{round(seconds(text) * 1000 / SPEED)}ms"


@pytest.mark.integration
def test_real_alertmanager_resends_within_every_tick(tmp_path: Path) -> None:
    (policy,) = yaml.safe_load((PROVISIONING_DIR / "alerting/policies.yaml").read_text())[
        "policies"
    ]
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    port = _free_port()
    config = {
        "route": {
            "receiver": "scaler",
            "group_by": policy["group_by"],
            "group_wait": _scaled(policy["group_wait"]),
            "group_interval": _scaled(policy["group_interval"]),
            "repeat_interval": _scaled(policy["repeat_interval"]),
        },
        "receivers": [
            {
                "name": "scaler",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{receiver.server_port}/", "send_resolved": False}
                ],
            }
        ],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [
            _binary(),
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2):
                    break
            except OSError:
                assert process.poll() is None, "alertmanager exited"
                assert time.monotonic() < deadline, "alertmanager did not start"
                time.sleep(0.1)
        now = datetime.now(UTC)
        alert = [
            {
                "labels": {"alertname": "exo-pool-cpu-high", "action": "scale_up"},
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(minutes=10)).isoformat(),
            }
        ]
        request = urllib.request.Request(
            f"{base}/api/v2/alerts",
            data=json.dumps(alert).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=5).close()
        expected = effective_repeat(
            seconds(policy["group_interval"]), seconds(policy["repeat_interval"])
        )
        wait = seconds(policy["group_wait"]) / SPEED + NOTIFICATIONS * expected / SPEED + 2
        deadline = time.monotonic() + wait
        while len(receiver.arrivals) < NOTIFICATIONS and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)
        receiver.shutdown()
    arrivals = receiver.arrivals
    assert len(arrivals) >= NOTIFICATIONS, f"only {len(arrivals)} notifications in {wait:.1f} s"
    gaps = [(b - a) * SPEED for a, b in itertools.pairwise(arrivals)]
    print(f"\nre-send gaps at production timing (s): {[round(g, 1) for g in gaps]}")
    # Every gap is shorter than a tick: no tick window without a notification.
    assert max(gaps) < TICK, gaps
    # And it is the cadence Alertmanager's rule predicts (jitter: 30 % of a group interval).
    group, repeat = seconds(policy["group_interval"]), seconds(policy["repeat_interval"])
    tolerance = group * 0.3
    for gap in gaps:
        assert earliest_repeat(group, repeat) - tolerance <= gap, (gaps, group, repeat)
        assert gap <= effective_repeat(group, repeat) + tolerance, (gaps, group, repeat)
