"""A lab member's life after its VM is `running`, stage by stage, as on an Exoscale pool member.

On Exoscale `running` is the VM's state: the hypervisor started it. Only then does the guest
boot, and cloud-init run what our user-data asks (infra/terraform/modules/cloud-init: main.tf's
`pool_packages` with `package_update = true`, then templates/pool-setup.sh.tftpl):

1. **guest boot** — kernel, systemd, cloud-init's init stages, network;
2. **packages** — `apt-get update`, then `prometheus-node-exporter python3-venv nftables`;
   Debian's node-exporter package starts its service when installed, so the exporter answers
   on :9100 from the end of this stage;
3. **Python** — `python3 -m venv`, `pip install --require-hashes` of our wheel, then of its
   third-party pins from the index, `pip check`; then `systemctl enable --now slow-web`;
4. **app** — slow-web starts (really: the lab starts the real process, its start is not
   modelled) and answers /health; the NLB's next health check puts it in rotation.

exo-sd lists the member from `running` on, so Prometheus scrapes it through stages 1-3: first
nothing answers (the target is down), then the exporter reports the provisioning's CPU, then
the app serves. Stopping: SIGTERM drains slow-web, then the VM takes `shutdown` to go.

Every stage lasts at least `base` plus a uniform draw in [0, jitter]; `MemberLifecycle` holds
lab seconds (already divided by --speed). `realistic()` gives the speed-1 figures and where
they come from; where nothing public gives a figure, the harsher (longer) value is taken, and
the comment says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Stage:
    """A stage lasting `base` seconds plus a uniform draw in [0, jitter]."""

    base: float = 0.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.jitter < 0:
            raise ValueError(f"stage durations must be >= 0, got {self.base} + {self.jitter}")

    def draw(self, rng: random.Random) -> float:
        return self.base + (rng.uniform(0.0, self.jitter) if self.jitter else 0.0)

    def scaled(self, speed: float) -> Stage:
        return Stage(self.base / speed, self.jitter / speed)

    @property
    def most(self) -> float:
        return self.base + self.jitter


@dataclass(frozen=True)
class StagePlan:
    """One member's drawn durations, lab seconds."""

    guest_boot: float
    packages: float
    python: float
    shutdown: float


def compensated(plan: StagePlan, real_start: float, speed: float) -> tuple[StagePlan, float]:
    """The plan with slow-web's real start paid back, and what could not be paid back.

    slow-web really starts in the lab (imports, the first /health) and --speed cannot divide
    that: at ×20 a 4 s start is 80 production seconds, 4 at ×1. So a sped-up member is given
    back `real_start × (1 − 1/speed)` lab seconds from its Python stage, then its guest boot
    (the stages where nothing but the provisioning's CPU runs; the packages stage, at whose end
    the exporter comes up, keeps its length): it then serves when a ×1 member would, the real
    start counting as `real_start / speed`. The second value is the part no stage could give
    back (lab seconds late), 0 when the compensation was whole."""
    due = max(0.0, real_start * (1.0 - 1.0 / speed)) if speed > 1 else 0.0
    python = max(0.0, plan.python - due)
    due -= plan.python - python
    guest_boot = max(0.0, plan.guest_boot - due)
    due -= plan.guest_boot - guest_boot
    return replace(plan, guest_boot=guest_boot, python=python), due


@dataclass(frozen=True)
class MemberLifecycle:
    """Durations of a member's stages after `running` (lab seconds) and its provisioning CPU.

    `provisioning_cpu`: the share of one vCPU the provisioning keeps busy during `packages`
    and `python` (burnt for real inside the member's cgroup, see members.py).
    `seed`: jitter draws are reproducible with a seed, random without.
    """

    guest_boot: Stage = field(default_factory=Stage)
    packages: Stage = field(default_factory=Stage)
    python: Stage = field(default_factory=Stage)
    shutdown: Stage = field(default_factory=Stage)
    provisioning_cpu: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.provisioning_cpu <= 1.0:
            raise ValueError(f"provisioning_cpu must be within [0, 1], got {self.provisioning_cpu}")

    @classmethod
    def instant(cls) -> MemberLifecycle:
        """No stage at all: the app starts as soon as the VM runs. For tests of logic only."""
        return cls()

    @classmethod
    def realistic(cls) -> MemberLifecycle:
        """Speed-1 figures (divide with `scaled`). Sources, stage by stage:

        - guest boot 20 s + up to 10 s: nothing Exoscale-specific is public. cloud-init's own
          modules take well under a second each (cloud-init docs, "analyze": `cloud-init
          analyze blame` example); a whole Debian/Ubuntu guest to a usable shell is reported
          at about 30 s (hashbang/shell-etc#81, "the shell servers boot fairly speedily
          (~30s)") and EC2 Linux instances at one to two minutes from launch to first SSH
          (ADMIN magazine 65/2021, "Comparing startup times of Linux distros in the cloud"),
          which includes the VM's own start. The harsher end of what remains after `running`.
        - packages 25 s + up to 15 s: `apt-get update` (Debian 12 main, updates, security
          indexes) and three packages with their dependencies on a 1-vCPU standard.tiny. No
          public measurement for that image; apt metadata refreshes are reported taking
          seconds normally and minutes with a bad mirror (kubernetes/kubernetes#22071;
          awslabs/amazon-eks-ami#1074 for yum's ~5 s). Harsher case taken.
        - Python 30 s + up to 15 s: a venv with ensurepip, our wheel by URL with its sha256,
          slow-web's pins (click, starlette, uvicorn, prometheus-client and their own
          dependencies) from the index, `pip check`, on 1 vCPU. No public figure; harsher case.
        - shutdown 10 s + up to 5 s: after slow-web drained, systemd stops the rest and the
          VM is destroyed; the member is listed `destroying` meanwhile. Not public; a guess.
        - provisioning CPU 1.0 (one busy vCPU): dpkg and pip are mostly one CPU-bound
          process, and what they spend waiting on disk or network is `iowait`, which the
          alert's `1 - rate(idle)` counts as busy too. The harsher case for the scaler: a
          booting member looks fully loaded.
        """
        return cls(
            guest_boot=Stage(20.0, 10.0),
            packages=Stage(25.0, 15.0),
            python=Stage(30.0, 15.0),
            shutdown=Stage(10.0, 5.0),
            provisioning_cpu=1.0,
        )

    def scaled(self, speed: float) -> MemberLifecycle:
        return MemberLifecycle(
            guest_boot=self.guest_boot.scaled(speed),
            packages=self.packages.scaled(speed),
            python=self.python.scaled(speed),
            shutdown=self.shutdown.scaled(speed),
            provisioning_cpu=self.provisioning_cpu,
            seed=self.seed,
        )

    def draw(self, rng: random.Random) -> StagePlan:
        return StagePlan(
            guest_boot=self.guest_boot.draw(rng),
            packages=self.packages.draw(rng),
            python=self.python.draw(rng),
            shutdown=self.shutdown.draw(rng),
        )

    @property
    def provisioning_most(self) -> float:
        """The longest a member may take from `running` to starting its app."""
        return self.guest_boot.most + self.packages.most + self.python.most


#: The provisioning's stand-in: burns `share` of one host core in 10 ms slices (the cgroup's
#: CFS period) until `seconds` have passed, then exits by itself, so even a process the lab
#: lost track of ends. Arguments: seconds, share.
BURN_SCRIPT = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
share = min(1.0, max(0.0, float(sys.argv[2])))
while True:
    now = time.monotonic()
    if now >= end:
        break
    busy_until = now + 0.01 * share
    while time.monotonic() < busy_until:
        pass
    if share < 1.0:
        time.sleep(min(0.01 * (1.0 - share), max(0.0, end - time.monotonic())))
"""
