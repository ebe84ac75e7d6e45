"""The one configuration object every part of slow-web is built from."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated settings; the CLI builds one, tests build their own."""

    instance_name: str
    workers: int
    host: str = "0.0.0.0"
    port: int = 8080
    work_ms: int = 100
    max_work_ms: int = 5000
    load_seconds: float = 10.0
    max_load_seconds: float = 60.0
    max_queue: int | None = None
    retry_after_seconds: int = 1
    drain_timeout: float = 30.0
    admin_host: str = "127.0.0.1"
    admin_port: int = 8081
    # repr=False keeps the token out of every log line and traceback that prints settings.
    admin_token: str | None = dataclasses.field(default=None, repr=False)
    worker_nice: int = 10
    access_log: bool = False

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ValueError("; ".join(problems))

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if not self.instance_name:
            problems.append("instance name must not be empty")
        if self.workers < 1:
            problems.append(f"workers must be at least 1, got {self.workers}")
        if self.max_work_ms < 0:
            problems.append(f"max work ms must be >= 0, got {self.max_work_ms}")
        if not 0 <= self.work_ms <= self.max_work_ms:
            problems.append(
                f"work ms must be between 0 and max work ms ({self.max_work_ms}), "
                f"got {self.work_ms}"
            )
        if not (math.isfinite(self.max_load_seconds) and self.max_load_seconds > 0):
            problems.append(f"max load seconds must be > 0, got {self.max_load_seconds}")
        if not (
            math.isfinite(self.load_seconds) and 0 < self.load_seconds <= self.max_load_seconds
        ):
            problems.append(
                "load seconds must be > 0 and <= max load seconds "
                f"({self.max_load_seconds}), got {self.load_seconds}"
            )
        if self.max_queue is not None and self.max_queue < 0:
            problems.append(f"max queue must be >= 0, got {self.max_queue}")
        if self.retry_after_seconds < 0:
            problems.append(f"retry-after must be >= 0, got {self.retry_after_seconds}")
        if not (math.isfinite(self.drain_timeout) and self.drain_timeout >= 0):
            problems.append(f"drain timeout must be >= 0, got {self.drain_timeout}")
        for name, port in (("port", self.port), ("admin port", self.admin_port)):
            if not 0 <= port <= 65535:
                problems.append(f"{name} must be between 0 and 65535, got {port}")
        if not 0 <= self.worker_nice <= 19:
            problems.append(f"worker nice must be between 0 and 19, got {self.worker_nice}")
        if self.admin_token is not None and not self.admin_token:
            problems.append("admin token must not be empty")
        return problems

    @property
    def queue_limit(self) -> int:
        """Requests allowed to wait for a worker; the rest are shed."""
        return 4 * self.workers if self.max_queue is None else self.max_queue
