"""Services run as real processes, so tests can SIGTERM or SIGKILL them by pid."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deploy.local.processes import stop_pid
from shared.settings import Settings
from tests.support.infra import REPO_ROOT, settings_env


class ServiceProcess:
    """A service process; `stop_leftovers` (run after every test, for the processes it started,
    and at the end of the session) kills any that a failing test left behind."""

    _started: list[ServiceProcess] = []

    def __init__(self, service: str, settings: Settings, port: int, log_dir: Path) -> None:
        self.service = service
        self.settings = settings
        self.port = port
        self.log_path = log_dir / f"{service}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        env = settings_env(self.settings)
        env[f"CHURNWATCH_{self.service.upper()}_PORT"] = str(self.port)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.service}"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        ServiceProcess._started.append(self)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    @classmethod
    def started_so_far(cls) -> int:
        return len(cls._started)

    @classmethod
    def stop_leftovers(cls, since: int = 0) -> list[int]:
        """SIGKILL every process started since the `since`-th that still runs; the pids killed."""
        leftovers = cls._started[since:]
        killed = [p.process.pid for p in leftovers if p.process is not None and p.process.poll() is None]
        for started in leftovers:
            started.kill()
        del cls._started[since:]
        return killed

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.service} exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.service} not ready: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """Graceful: SIGTERM and wait for the process to finish its work."""
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, signal.SIGTERM, timeout=40)
            self.process.wait()
