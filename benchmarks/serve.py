"""Serving one variant with gunicorn and measuring the memory of its processes."""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .apps import VARIANTS
from .lifecycle import Started, stop_process

ROOT = Path(__file__).resolve().parent.parent
TOKEN_PATH = "/livekit/token"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Log lines that mean something went wrong in a worker: library or asyncio warnings, unclosed
#: aiohttp sessions/connectors, loop errors, tracebacks, gunicorn worker errors.
WARNING_PATTERN = re.compile(
    r"WARNING|ERROR|CRITICAL|Traceback|Unclosed|Task was destroyed|Event loop is closed"
    r"|Exception in callback|Warning:|was terminated|WORKER TIMEOUT"
)


@dataclass(frozen=True)
class ServerSettings:
    """gunicorn settings, identical for every variant."""

    workers: int = 1
    threads: int = 8
    worker_class: str = "gthread"
    graceful_timeout: int = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _no_control_socket() -> list[str]:
    """Newer gunicorn opens a control socket in the home directory; one run needs none."""
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def process_tree(pid: int) -> list[int]:
    """``pid`` and its direct children (gunicorn's master and workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *(int(child) for child in children)]


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue  # the process exited between listing and reading
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by ``pids`` (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / _CLOCK_TICKS


class GunicornServer(Started):
    """A gunicorn master serving ``benchmarks.apps:create_app(variant)`` on a loopback port.

    ``app`` serves another app factory instead (gunicorn's ``module:factory(...)`` syntax),
    with ``variant`` as its label.
    """

    def __init__(
        self,
        variant: str,
        env: dict[str, str],
        log_path: Path,
        settings: ServerSettings,
        app: str | None = None,
    ) -> None:
        if app is None and variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}")
        self.variant = variant
        self.app = app or f"benchmarks.apps:create_app({variant!r})"
        self.settings = settings
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{TOKEN_PATH}"
        self._env = {**os.environ, **env, "PYTHONWARNINGS": "default"}
        self._process: subprocess.Popen[bytes] | None = None
        #: The body of the first answer, kept to compare the tokens the variants sign.
        self.first_answer: bytes = b""

    @property
    def command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(s.workers),
            "--threads",
            str(s.threads),
            "--worker-class",
            s.worker_class,
            "--graceful-timeout",
            str(s.graceful_timeout),
            "--bind",
            f"127.0.0.1:{self.port}",
            *_no_control_socket(),
            self.app,
        ]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command, cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def rss(self) -> int:
        return rss_bytes(process_tree(self.pid))

    def cpu(self) -> float:
        return cpu_seconds(process_tree(self.pid))

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), so shutdown warnings land in the log too."""
        stop_process(self._process, self.settings.graceful_timeout + 10)

    def connection_split(self) -> list[int]:
        """Established client connections held by each worker right now, largest first.

        gunicorn's workers share one listening socket; the kernel hands each new connection to
        whichever worker accepts first, and a keep-alive client stays with that worker.
        """
        tree = process_tree(self.pid)
        established = _established_inodes(self.port)
        counts = []
        for pid in tree[1:]:
            inodes = set()
            try:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    try:
                        target = os.readlink(fd)
                    except OSError:
                        continue
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
            except OSError:
                continue
            counts.append(len(inodes & established))
        return sorted(counts, reverse=True)

    def warnings(self) -> list[str]:
        """Lines of the server log that look like a warning or an error."""
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if WARNING_PATTERN.search(line)]

    def _wait_ready(self, timeout: float = 60.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn for {self.variant} exited with {self._process.returncode}:\n"
                    + self.log_path.read_text(errors="replace")[-3000:]
                )
            if len(process_tree(self.pid)) == self.settings.workers + 1 and self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn for {self.variant} was not ready within {timeout:.0f}s")

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(
                "POST", TOKEN_PATH, body=b"{}", headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            body = response.read()
        except OSError:
            return False
        finally:
            connection.close()
        if response.status != 201:
            raise RuntimeError(
                f"{self.variant} answered {response.status} instead of 201: {body[:500]!r}"
            )
        self.first_answer = body
        return True


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (
                len(fields) > 9
                and fields[3] == "01"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    return inodes


@dataclass
class RssSampler:
    """Samples the summed RSS of a gunicorn master and its workers in a background thread."""

    server: GunicornServer
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    splits: list[list[int]] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def _run(self) -> None:
        while True:
            self.samples.append((time.monotonic() - self._start, self.server.rss()))
            if len(self.samples) % 10 == 5:
                self.splits.append(self.server.connection_split())
            if self._stop.wait(self.interval):
                return
