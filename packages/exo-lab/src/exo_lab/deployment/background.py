"""`exo-lab up` / `exo-lab down`: a lab stack left running that looks like a deployment.

`up` starts a detached process (`exo-lab serve-up`, its own session, so closing the terminal
or the caller exiting does not stop it) that brings up a `LabStack` and writes, into its state
folder, `outputs.json` in the shape of `terraform output -json` with the lab's values. `down`
sends it SIGTERM; it stops every child, member, cgroup and the lab lock the way a finished
`exo-lab run` does, then removes its pidfile and outputs (they hold secrets). Logs stay.

State folder (default `lab-runs/up`): `up.pid` (pid and start time, so a recycled pid is never
signalled), `up-settings.json`, `outputs.json` (0600), `up.log`, `up-error.txt` on a failed
start, and the stack's own files (`logs/`, `prometheus.yml`, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from ..dataplane.lock import LabBusyError
from ..files import write_atomically
from ..stack.grafana import ProvisioningError
from ..stack.lab_stack import LabStack
from ..stack.processes import ChildExited
from ..stack.settings import LabError, LabSettings, ProductionTimings
from .cost import cost_estimate, load_prices
from .outputs import Output, OutputsError, parse_terraform_json, to_terraform_json

DEFAULT_STATE_DIR = Path("lab-runs/up")


@dataclass(frozen=True)
class UpConfig:
    """What `exo-lab up` was asked for; the detached process reads it from up-settings.json."""

    speed: float = 10.0
    min_size: int = 1
    max_size: int = 5
    initial_size: int = 1
    work_ms: int = 50
    cpu_per_vcpu: float = 0.25
    member_network: str = "127.1.0.0/24"
    provisioning: str = "grafana-provisioning"
    prices: str = "infra/terraform/prices.json"
    timing_model: str = "realistic"
    #: Terraform's iam_scope_by_id: roles scoped to the pool and NLB, or operation-only
    iam_scope_by_id: bool = True
    #: False: the zone's IAM does not bind path/query parameters (`parameters.id`), as an
    #: Exoscale binding only the documented body parameters would
    iam_binds_url_parameters: bool = True

    def settings(self, out: Path) -> LabSettings:
        return LabSettings(
            out=out,
            speed=self.speed,
            min_size=self.min_size,
            max_size=self.max_size,
            initial_size=self.initial_size,
            work_ms=self.work_ms,
            cpu_per_vcpu=self.cpu_per_vcpu,
            member_network=self.member_network,
            provisioning=Path(self.provisioning).resolve(),
            timings=ProductionTimings.named(self.timing_model),
            iam_scope_by_id=self.iam_scope_by_id,
            iam_binds_url_parameters=self.iam_binds_url_parameters,
            progress=lambda line: print(line, flush=True),
        )


class StatePaths:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir.resolve()
        self.pid = self.dir / "up.pid"
        self.settings = self.dir / "up-settings.json"
        self.outputs = self.dir / "outputs.json"
        self.log = self.dir / "up.log"
        self.error = self.dir / "up-error.txt"


def running_pid(paths: StatePaths) -> int | None:
    """The detached lab's pid if it still runs (same pid *and* start time), else None."""
    try:
        pid_text, _, born_text = paths.pid.read_text().partition(" ")
        pid, born = int(pid_text), float(born_text)
        if abs(psutil.Process(pid).create_time() - born) < 1.0:
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


# -- the detached process -------------------------------------------------------------------


def lab_outputs(stack: LabStack, config: UpConfig, prices: dict[str, float]) -> dict[str, Output]:
    """The outputs Terraform prints (outputs.tf), with the lab's values.

    Grafana cannot run offline, so `grafana_url` and `grafana_admin_password` are absent (null
    outputs are left out, as Terraform does); the `lab` output names what stands in for it.
    `exo_sd_api_key` and `exo_scaler_api_key` are the keys the two services run with, each
    with its role from Terraform's policy files (policies/<service>-role.json.tftpl). A real
    operator brings their own key; the lab's is the zone's full-access key, given as
    `lab_operator_api_key`/`_secret`.
    """
    assert stack.local_zone is not None and stack.plane is not None
    s = stack.s
    nlb = urlsplit(stack.nlb_url)
    operator_key, operator_secret = stack.local_zone.credentials
    children = {c.name: c.process.pid for c in stack.children.children}
    return {
        "nlb_ip_address": Output(nlb.hostname),
        "app_url": Output(stack.nlb_url),
        "monitor_ip_address": Output("127.0.0.1"),
        "prometheus_url": Output(stack.prometheus_url + "/"),
        "scaler_internal_url": Output(stack.scaler_url),
        "instance_pool_id": Output(stack.pool_id),
        "nlb_id": Output(stack.nlb_id),
        "zone": Output(stack.local_zone.name),
        "api_endpoint": Output(stack.endpoint),
        "scaler_token": Output(stack.scaler_token, sensitive=True),
        "member_admin_token": Output(stack.plane.runtime.admin_token, sensitive=True),
        **{
            f"{service.replace('-', '_')}_api_{part}": Output(
                stack.service_env[service][f"EXOSCALE_API_{part.upper()}"], sensitive=True
            )
            for service in ("exo-sd", "exo-scaler")
            for part in ("key", "secret")
        },
        "iam_scope_by_id": Output(s.iam_scope_by_id),
        "lab_operator_api_key": Output(operator_key, sensitive=True),
        "lab_operator_api_secret": Output(operator_secret, sensitive=True),
        "cost_estimate_eur_per_hour": Output(
            cost_estimate(
                prices,
                s.instance_type,
                min_size=s.min_size,
                initial_size=s.initial_size,
                max_size=s.max_size,
            )
        ),
        "lab": Output(
            {
                "stand_in_for_grafana": "Prometheus alert rules + Alertmanager (derived from "
                "grafana-provisioning/); no Grafana, no dashboard",
                "alertmanager_url": stack.alertmanager_url + "/",
                "speed": s.speed,
                "instance_type": s.instance_type,
                "work_ms": s.work_ms,
                "member_cores": s.member_cores,
                "min_size": s.min_size,
                "max_size": s.max_size,
                "member_network": s.member_network,
                "cpu_cap": stack.plane.runtime.cpu_cap,
                "iam_binds_url_parameters": s.iam_binds_url_parameters,
                "state_dir": str(stack.out),
                "pid": os.getpid(),
                "children": children,
                "config": asdict(config),
            }
        ),
    }


def serve_up(state_dir: Path) -> int:
    """The detached process: bring the stack up, publish the outputs, wait for SIGTERM."""
    paths = StatePaths(state_dir)
    stop = threading.Event()
    # Only set a flag in the handler: the stack's own shutdown path runs on the main thread.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    me = psutil.Process()
    write_atomically(paths.pid, f"{me.pid} {me.create_time()}")
    try:
        config = UpConfig(**json.loads(paths.settings.read_text()))
        prices = load_prices(Path(config.prices))
        with LabStack(config.settings(paths.dir)) as stack:
            stack.start()
            outputs = lab_outputs(stack, config, prices)
            write_atomically(paths.outputs, to_terraform_json(outputs), mode=0o600)
            print("lab up; waiting for SIGTERM (exo-lab down)", flush=True)
            # A child that dies stays dead: verify is there to notice, the lab does not hide it.
            while not stop.wait(1.0):
                pass
            print("stopping", flush=True)
        return 0
    except (LabError, LabBusyError, ChildExited, ProvisioningError, OutputsError,
            TimeoutError, OSError, TypeError, ValueError) as exc:  # fmt: skip
        write_atomically(paths.error, f"{exc}\n")
        return 2
    finally:
        paths.outputs.unlink(missing_ok=True)
        paths.pid.unlink(missing_ok=True)


# -- the caller's side ------------------------------------------------------------------------


class UpError(RuntimeError):
    """`up` or `down` could not do it; one line for the terminal."""


def start_up(state_dir: Path, config: UpConfig, timeout: float = 180.0) -> dict[str, Output]:
    """Start the detached lab and return its outputs once the stack is ready."""
    paths = StatePaths(state_dir)
    pid = running_pid(paths)
    if pid is not None:
        raise UpError(
            f"a lab is already up under {paths.dir} (pid {pid}): exo-lab down --state-dir "
            f"{state_dir}"
        )
    paths.dir.mkdir(parents=True, exist_ok=True)
    for stale in (paths.outputs, paths.error, paths.pid):
        stale.unlink(missing_ok=True)
    write_atomically(paths.settings, json.dumps(asdict(config), indent=2))
    with paths.log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "exo_lab", "serve-up", "--state-dir", str(paths.dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if paths.outputs.exists():
            return parse_terraform_json(paths.outputs.read_text(), str(paths.outputs))
        if process.poll() is not None:
            raise UpError(_failure(paths, process.returncode))
        time.sleep(0.2)
    _terminate(process.pid, 60.0)
    raise UpError(f"the lab was not ready after {timeout:.0f}s and was stopped; see {paths.log}")


def _failure(paths: StatePaths, code: int | None) -> str:
    with contextlib.suppress(OSError):
        return paths.error.read_text().strip().splitlines()[0]
    tail = ""
    with contextlib.suppress(OSError):
        tail = " / ".join(paths.log.read_text(errors="replace").splitlines()[-3:])
    return f"the lab process exited with code {code}: {tail or 'no log'} (see {paths.log})"


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, wait; SIGKILL what is left. True when it ended on SIGTERM."""
    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout)
        return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            process.kill()
        return False


def stop_up(state_dir: Path, timeout: float = 90.0) -> str:
    """Stop the detached lab; what happened, in one line."""
    paths = StatePaths(state_dir)
    pid = running_pid(paths)
    if pid is None:
        for stale in (paths.outputs, paths.pid):
            stale.unlink(missing_ok=True)
        return f"no lab is up under {paths.dir}"
    children: dict[str, int] = {}
    with contextlib.suppress(OSError, OutputsError, AttributeError):
        lab = parse_terraform_json(paths.outputs.read_text())["lab"].value
        children = dict(lab.get("children", {}))
    if _terminate(pid, timeout):
        return f"lab stopped (pid {pid}): its processes, cgroups and lab lock are gone"
    # It ignored SIGTERM: its children are their own process groups; kill those too. Its
    # members are swept by the next lab started on the same member network.
    for child in children.values():
        with contextlib.suppress(OSError):
            os.killpg(child, signal.SIGKILL)
    for stale in (paths.outputs, paths.pid):
        stale.unlink(missing_ok=True)
    return (
        f"lab (pid {pid}) did not stop within {timeout:.0f}s and was killed; its members are "
        "removed by the next lab on the same member network"
    )
