"""Start and stop the example agent as a real ``livekit-agents`` worker process.

Used by the demo (``examples/serve_demo.py``) and the integration tests. The worker runs in the
agent's own virtualenv (``.venv/agent``, built by ``scripts/setup-agent-env.sh``): livekit-agents
pins an older ``livekit`` rtc SDK than the one the app side uses, so the two do not share an
environment. This module imports neither, it only manages the process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = ROOT / "scripts" / "setup-agent-env.sh"
AGENT_FILE = Path(__file__).with_name("agent.py")
#: The worker logs this line (JSON) once livekit-server accepted its registration.
REGISTERED = '"registered worker"'


class AgentWorkerError(RuntimeError):
    """The agent worker could not be set up or did not register with LiveKit."""


def agent_python() -> Path:
    """The interpreter of the agent's virtualenv (``AGENT_VENV`` or ``.venv/agent``)."""
    venv = Path(os.environ.get("AGENT_VENV") or ROOT / ".venv" / "agent")
    return venv / "bin" / "python"


def ensure_agent_env(timeout: float = 900) -> Path:
    """Build (or refresh) the agent's virtualenv when needed; return its python."""
    try:
        result = subprocess.run(
            [str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentWorkerError(f"{SETUP_SCRIPT.name} failed: {exc}") from exc
    python = agent_python()
    if result.returncode != 0 or not python.exists():
        raise AgentWorkerError(
            f"{SETUP_SCRIPT.name} failed (exit {result.returncode}):\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    return python


class AgentWorker:
    """``python -m livekit.agents start examples/agent/agent.py`` against one LiveKit server.

    Uses ``start`` (production mode, no file watching). The worker registers under
    ``agent_name`` for explicit dispatch; ``start()`` returns once LiveKit accepted it.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        agent_name: str = "onboarding-agent",
        log_path: Path | str,
        python: Path | str | None = None,
        log_level: str = "INFO",
        http_port: int = 0,
        env: dict[str, str] | None = None,
        host_url: str | None = None,
    ) -> None:
        self.url = url
        self.http_port = http_port
        self.extra_env = dict(env or {})
        #: The app's URL with the extension's prefix, where the agent posts its reports.
        self.host_url = host_url
        self.agent_name = agent_name
        self.log_path = Path(log_path)
        self.python = Path(python) if python else agent_python()
        self.log_level = log_level
        self._credentials = (api_key, api_secret)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def environment(self) -> dict[str, str]:
        api_key, api_secret = self._credentials
        return {
            **os.environ,
            "LIVEKIT_URL": self.url,
            "LIVEKIT_API_KEY": api_key,
            "LIVEKIT_API_SECRET": api_secret,
            "LIVEKIT_ONBOARDING_AGENT_NAME": self.agent_name,
            "ONBOARDING_AGENT_HTTP_HOST": "127.0.0.1",
            **({"ONBOARDING_AGENT_HTTP_PORT": str(self.http_port)} if self.http_port else {}),
            **self.extra_env,
            **({"LIVEKIT_ONBOARDING_HOST_URL": self.host_url} if self.host_url else {}),
        }

    def active_jobs(self) -> int:
        """How many jobs the worker runs now, from its health server (needs ``http_port``)."""
        if not self.http_port:
            raise AgentWorkerError("active_jobs() needs the worker started with an http_port")
        url = f"http://127.0.0.1:{self.http_port}/worker"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(json.load(response).get("active_jobs", 0))

    def start(self, timeout: float = 60) -> None:
        if not self.python.exists():
            raise AgentWorkerError(
                f"the agent environment is missing ({self.python}); run {SETUP_SCRIPT}"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.python), "-m", "livekit.agents", "start", str(AGENT_FILE),
            "--log-level", self.log_level,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            start_offset = log.tell()
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C in a terminal reaches the parent, which then
                # stops the worker (and its job processes) in order.
                start_new_session=True,
            )
        try:
            self._wait_registered(start_offset, timeout)
        except BaseException:  # Ctrl-C included: the worker is in its own session
            self.stop()
            raise

    def _wait_registered(self, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while REGISTERED not in self._log_since(offset):
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process else None
                raise AgentWorkerError(f"the agent worker exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AgentWorkerError(
                    f"the agent worker did not register within {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: the worker drains (at most ``ONBOARDING_AGENT_DRAIN_TIMEOUT``, 10 s, then
        5 s for its job processes to stop) and exits; SIGKILL if it is still there after
        ``timeout``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()

    def __enter__(self) -> AgentWorker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
