"""Run a real LiveKit server on loopback for tests, demos and benchmarks.

The onboarding blueprint is only worth testing against the server it talks to, so this module
finds the pinned ``livekit-server`` release (it never builds one) and runs it on free loopback
ports with its own API key, secret and webhook URLs::

    from flask_livekit_onboarding.devserver import LiveKitDevServer, ensure_livekit_server

    with LiveKitDevServer(ensure_livekit_server()) as server:
        app = Flask(__name__)
        app.config.update(
            LIVEKIT_URL=server.url,
            LIVEKIT_API_KEY=server.api_key,
            LIVEKIT_API_SECRET=server.api_secret,
        )
        onboarding.init_app(app)  # after the config: init_app reads it once

From a shell, ``python -m flask_livekit_onboarding.devserver`` prints the path of a usable
binary (or says how to get one) and ``python -m flask_livekit_onboarding.devserver serve``
runs a server until interrupted.

`LiveKitCluster` runs several nodes that share one Redis, as LiveKit runs in production
(multi-node routing is on whenever ``redis`` is configured, ``--dev`` included)::

    with LiveKitCluster(redis_url="redis://127.0.0.1:6379/0", nodes=2) as cluster:
        first, second = cluster.nodes  # same key pair, one URL each
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "LIVEKIT_SERVER_MODULE",
    "LIVEKIT_SERVER_VERSION",
    "LiveKitCluster",
    "LiveKitDevServer",
    "LiveKitServerError",
    "ensure_livekit_server",
    "find_livekit_server",
    "free_port",
]

#: The livekit-server release the package is tested against.
LIVEKIT_SERVER_VERSION = "v1.13.5"
#: Go package that builds the ``livekit-server`` binary (installed under the name ``server``).
LIVEKIT_SERVER_MODULE = "github.com/livekit/livekit-server/cmd/server"
#: Environment variable naming a livekit-server binary to use instead of searching for one.
LIVEKIT_SERVER_BIN_ENV = "LIVEKIT_SERVER_BIN"

_VERSION_RE = re.compile(r"livekit-server version v?(\d+\.\d+\.\d+\S*)")
_NODE_ID_RE = re.compile(r"starting LiveKit server\t.*?\"nodeID\": \"(ND_\w+)\"")
# livekit-server reads these (and every LIVEKIT_* variable) as configuration; a host app's
# LIVEKIT_URL or a developer's LIVEKIT_KEYS must not leak into the server under test.
_SERVER_ENV_VARS = frozenset({"NODE_IP", "UDP_PORT", "REDIS_HOST", "REDIS_PASSWORD"})
# Free ports are found by binding and releasing them, so another process can take one before
# the server binds it; the first start then retries with fresh ports.
_PORT_ATTEMPTS = 3


class LiveKitServerError(RuntimeError):
    """No usable livekit-server binary, or a server that would not start."""


def _normalize_version(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def _binary_version(path: str) -> str | None:
    """Return ``vX.Y.Z`` if *path* runs and identifies itself as livekit-server, else None."""
    try:
        result = subprocess.run(
            [path, "--version"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(result.stdout + result.stderr)
    return _normalize_version(match.group(1)) if match else None


def _go_env(go: str, name: str) -> str:
    result = subprocess.run(
        [go, "env", name], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def _go_install_dir(go: str | None, gobin: str | None = None) -> Path | None:
    """Where ``go install`` puts binaries: GOBIN, else the first GOPATH entry's ``bin``."""
    if gobin:
        return Path(gobin)
    if go is None:
        return Path.home() / "go" / "bin"
    configured = _go_env(go, "GOBIN")
    if configured:
        return Path(configured)
    gopath = _go_env(go, "GOPATH").split(os.pathsep)[0]
    return Path(gopath) / "bin" if gopath else None


def _candidates() -> Iterable[str]:
    found = shutil.which("livekit-server")
    if found:
        yield found
    install_dir = _go_install_dir(shutil.which("go"))
    if install_dir is not None:
        yield str(install_dir / "server")
    # A bare ``server`` on PATH is often something else; the --version check weeds that out.
    found = shutil.which("server")
    if found:
        yield found


def find_livekit_server(version: str | None = LIVEKIT_SERVER_VERSION) -> str | None:
    """Return the path of a livekit-server binary, or None if there is none.

    ``$LIVEKIT_SERVER_BIN`` wins and may be any release; it raises `LiveKitServerError` if it
    does not point at livekit-server. Otherwise ``livekit-server`` on PATH, the ``server``
    binary that ``go install`` produced, then ``server`` on PATH are tried, keeping the first
    that reports *version* (any release when *version* is None).
    """
    explicit = os.environ.get(LIVEKIT_SERVER_BIN_ENV)
    if explicit:
        if _binary_version(explicit) is None:
            raise LiveKitServerError(
                f"{LIVEKIT_SERVER_BIN_ENV}={explicit!r} is not a runnable livekit-server binary"
            )
        return explicit
    wanted = _normalize_version(version) if version else None
    seen: set[str] = set()
    for candidate in _candidates():
        real = os.path.realpath(candidate)
        if real in seen or not os.access(real, os.X_OK):
            continue
        seen.add(real)
        found = _binary_version(candidate)
        if found is not None and (wanted is None or found == wanted):
            return candidate
    return None


def ensure_livekit_server(version: str = LIVEKIT_SERVER_VERSION) -> str:
    """Return `find_livekit_server`'s answer, or raise `LiveKitServerError` naming the fix.

    The package never builds a toolchain: the binary comes from LiveKit's release, from
    ``go install`` (the command is in the error), or from ``$LIVEKIT_SERVER_BIN``.
    """
    found = find_livekit_server(version)
    if found is None:
        raise LiveKitServerError(
            f"no livekit-server {version} binary found (looked at ${LIVEKIT_SERVER_BIN_ENV}, "
            "livekit-server and server on PATH, and Go's bin directory); get one with "
            f"`go install {LIVEKIT_SERVER_MODULE}@{_normalize_version(version)}` (the binary is "
            f"named server) or point {LIVEKIT_SERVER_BIN_ENV} at a livekit-server binary"
        )
    return found


def _free_ports(host: str, tcp: int, udp: int) -> list[int]:
    """Ports free on *host*: *tcp* distinct TCP ports followed by *udp* distinct UDP ports."""
    sockets: list[socket.socket] = []
    try:
        for kind, count in ((socket.SOCK_STREAM, tcp), (socket.SOCK_DGRAM, udp)):
            for _ in range(count):
                sock = socket.socket(socket.AF_INET, kind)
                sockets.append(sock)
                sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on *host* right now (for webhook receivers and the like)."""
    return _free_ports(host, 1, 0)[0]


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop livekit-server: SIGTERM, a second (forcing) SIGTERM, then SIGKILL.

    A single SIGTERM asks the server to drain, which can outlast any test; the second one
    makes it shut down at once.
    """
    for grace in (min(0.5, timeout), timeout):
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.wait()


def _redis_config(url: str) -> dict[str, object]:
    """livekit-server's ``redis:`` section for a ``redis://`` or ``rediss://`` URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise LiveKitServerError("livekit-server needs a redis:// or rediss:// URL with a host")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    config: dict[str, object] = {"address": f"{host}:{parts.port or 6379}"}
    db = parts.path.strip("/")
    if db:
        if not db.isdigit():
            raise LiveKitServerError(f"the database in the redis URL is not a number: {db!r}")
        config["db"] = int(db)
    if parts.username:
        config["username"] = urllib.parse.unquote(parts.username)
    if parts.password:
        config["password"] = urllib.parse.unquote(parts.password)
    if parts.scheme == "rediss":
        config["use_tls"] = True
    return config


class LiveKitDevServer:
    """A livekit-server process on loopback with its own keys, ports and webhook URLs.

    Ports are chosen when the object is created (fresh ones again if another process grabs one
    before the first start) and kept across `stop` / `start` / `restart`, so clients
    configured with `url` reach the same server after an outage.
    `webhook_urls` may be changed before any (re)start. Use it as a context manager, or call
    `close` yourself: the process is always terminated, then killed if it lingers.

    With *redis_url* the server is one node of a cluster: it registers in that Redis and routes
    rooms and participants to whichever node hosts them (see `LiveKitCluster`).
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        api_key: str = "devkey-onboarding",
        api_secret: str | None = None,
        webhook_urls: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        log_level: str = "info",
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
        redis_url: str | None = None,
        node_ip: str | None = None,
    ) -> None:
        """Prepare (not start) a server; *binary* defaults to `ensure_livekit_server`.

        *workdir* keeps the config and log (``livekit.log``) after `close`; by default they
        live in a temporary directory removed on `close`. *redis_url* (``redis://host:port/db``)
        makes it a cluster node; *node_ip* is the address it advertises to clients and other
        nodes (*host* by default, which on loopback needs no external IP discovery).
        """
        redis = _redis_config(redis_url) if redis_url is not None else None
        self.binary = os.fspath(binary) if binary is not None else ensure_livekit_server()
        self.api_key = api_key
        self.api_secret = api_secret if api_secret is not None else secrets.token_urlsafe(48)
        self.webhook_urls: list[str] = list(webhook_urls)
        self.host = host
        self.redis_url = redis_url
        self._redis = redis
        self.node_ip = node_ip if node_ip is not None else host
        self.log_level = log_level
        self.start_timeout = start_timeout
        self._fixed_port = port
        self._pick_ports()
        self._has_started = False
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: (
            weakref.finalize[[subprocess.Popen[bytes], float], LiveKitDevServer] | None
        ) = None

    @property
    def url(self) -> str:
        """WebSocket URL clients and ``LIVEKIT_URL`` use."""
        return f"ws://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """HTTP URL of the same port (health check and server API)."""
        return f"http://{self.host}:{self.port}"

    @property
    def workdir(self) -> Path:
        """Directory holding the generated config and the server log."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="livekit-dev-server-"))
        return self._workdir

    @property
    def config_path(self) -> Path:
        return self.workdir / "livekit.yaml"

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr, appended to across restarts."""
        return self.workdir / "livekit.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    def config(self) -> dict[str, object]:
        """The server configuration as a mapping (written as YAML's JSON subset)."""
        config: dict[str, object] = {
            "port": self.port,
            "bind_addresses": [self.host],
            "keys": {self.api_key: self.api_secret},
            "logging": {"level": self.log_level},
            "rtc": {
                "tcp_port": self.rtc_tcp_port,
                "udp_port": self.rtc_udp_port,
                "node_ip": self.node_ip,
                "use_external_ip": False,
                "enable_loopback_candidate": True,
            },
        }
        if self.webhook_urls:
            config["webhook"] = {"api_key": self.api_key, "urls": list(self.webhook_urls)}
        if self._redis is not None:
            config["redis"] = dict(self._redis)
        return config

    def _pick_ports(self) -> None:
        ports = _free_ports(self.host, 2 if self._fixed_port is None else 1, 1)
        self.rtc_udp_port = ports.pop()
        self.rtc_tcp_port = ports.pop()
        self.port = self._fixed_port if self._fixed_port is not None else ports.pop()

    def start(self) -> None:
        """Write the config, start the server and wait until its health check answers OK."""
        if self.running:
            return
        attempts = 1 if self._has_started else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
            except LiveKitServerError as exc:
                if attempt == attempts or "address already in use" not in str(exc):
                    raise
                self._pick_ports()
            else:
                self._has_started = True
                return

    def _launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2), encoding="utf-8")
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("LIVEKIT_") and name not in _SERVER_ENV_VARS
        }
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [self.binary, "--dev", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self._process = process
        self._finalizer = weakref.finalize(self, _stop_process, process, 5.0)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise LiveKitServerError(
                    f"livekit-server exited with code {self._process.returncode}:\n"
                    + self.log_tail()
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise LiveKitServerError(
                    f"livekit-server not ready on {self.http_url} after "
                    f"{self.start_timeout:.0f}s:\n" + self.log_tail()
                )
            time.sleep(0.1)

    def healthy(self, timeout: float = 1.0) -> bool:
        """True when the server's ``GET /`` health check answers 200."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    @property
    def node_id(self) -> str | None:
        """The node ID (``ND_...``) the running server logged at start, or None."""
        if not self.running:
            return None
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        found = _NODE_ID_RE.findall(text)
        return found[-1] if found else None

    def log_tail(self, lines: int = 30) -> str:
        """The last *lines* lines of the server log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """End the server at once with SIGKILL, as a crash would (no drain, no deregistration).

        A cluster node killed this way stays registered in Redis until its stats go stale.
        `start` brings it back on the same ports.
        """
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (keeping its ports, config and log for a later `start`)."""
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            _stop_process(process, timeout)

    def restart(self) -> None:
        """Stop and start again on the same ports, with the current `webhook_urls`."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory (unless *workdir* was given)."""
        self.stop()
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> LiveKitDevServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LiveKitDevServer {self.url} {state}>"


class LiveKitCluster:
    """Several livekit-server nodes on loopback sharing one Redis and one key pair.

    Every node has its own URL (`urls`); in production a load balancer stands in front of
    them. LiveKit places a new room on one of the nodes and routes server API calls and
    participants to it from whichever node they reach. Each node posts the webhooks of the
    rooms it hosts to every URL in `webhook_urls`. Redis itself is not started here: pass the
    URL of a running one (a database of its own, e.g. ``redis://127.0.0.1:6379/0``).
    Stop, `LiveKitDevServer.kill` or restart single nodes through `nodes` to test failures.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        redis_url: str,
        nodes: int = 2,
        api_key: str = "devkey-onboarding",
        api_secret: str | None = None,
        webhook_urls: Sequence[str] = (),
        host: str = "127.0.0.1",
        log_level: str = "info",
        workdir: str | os.PathLike[str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        """Prepare (not start) *nodes* nodes; *workdir* holds one ``node-<i>`` directory each."""
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        binary = os.fspath(binary) if binary is not None else ensure_livekit_server()
        secret = api_secret if api_secret is not None else secrets.token_urlsafe(48)
        self.nodes: list[LiveKitDevServer] = [
            LiveKitDevServer(
                binary,
                api_key=api_key,
                api_secret=secret,
                webhook_urls=webhook_urls,
                host=host,
                log_level=log_level,
                workdir=Path(workdir) / f"node-{index}" if workdir is not None else None,
                start_timeout=start_timeout,
                redis_url=redis_url,
            )
            for index in range(nodes)
        ]
        self.binary = binary
        self.redis_url = redis_url
        self.api_key = api_key
        self.api_secret = secret

    @property
    def urls(self) -> list[str]:
        """The WebSocket URL of each node, in `nodes` order."""
        return [node.url for node in self.nodes]

    @property
    def webhook_urls(self) -> list[str]:
        return list(self.nodes[0].webhook_urls)

    @webhook_urls.setter
    def webhook_urls(self, urls: Sequence[str]) -> None:
        """Every node posts to all of *urls* from its next (re)start."""
        for node in self.nodes:
            node.webhook_urls = list(urls)

    @property
    def running(self) -> bool:
        """True when every node runs."""
        return all(node.running for node in self.nodes)

    def start(self) -> None:
        """Start every node that is not running, waiting for each health check."""
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node (ports, configs and logs are kept for a later `start`)."""
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        """Stop every node and remove the temporary directories."""
        for node in self.nodes:
            node.close()

    def log_tail(self, lines: int = 30) -> str:
        """The last *lines* lines of each node's log, for error messages."""
        return "\n".join(
            f"--- node {index} ({node.url}) ---\n{node.log_tail(lines)}"
            for index, node in enumerate(self.nodes)
        )

    def __enter__(self) -> LiveKitCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        running = sum(node.running for node in self.nodes)
        return f"<LiveKitCluster {running} of {len(self.nodes)} nodes running>"


def main(argv: Sequence[str] | None = None) -> int:
    """``ensure`` (default): print a livekit-server path; ``serve``: run one until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_livekit_onboarding.devserver",
        description="Find or run the livekit-server used by tests and demos.",
    )
    parser.add_argument("command", nargs="?", choices=("ensure", "serve"), default="ensure")
    parser.add_argument("--version", default=LIVEKIT_SERVER_VERSION, dest="server_version")
    parser.add_argument("--port", type=int, default=None, help="HTTP/WebSocket port (serve)")
    parser.add_argument("--webhook-url", action="append", default=[], help="(serve)")
    parser.add_argument(
        "--redis-url", default=None, help="run cluster nodes sharing this Redis (serve)"
    )
    parser.add_argument("--nodes", type=int, default=1, help="how many nodes (serve, with Redis)")
    args = parser.parse_args(argv)
    if args.nodes < 1 or (args.nodes > 1 and args.redis_url is None):
        parser.error("--nodes needs --redis-url and a count of at least 1")
    if args.redis_url is not None and args.port is not None:
        parser.error("--port cannot be combined with --redis-url: every node gets a free port")
    try:
        binary = ensure_livekit_server(args.server_version)
        if args.command == "ensure":
            print(binary)
            return 0
        servers: LiveKitCluster | LiveKitDevServer
        if args.redis_url is not None:
            servers = LiveKitCluster(
                binary, redis_url=args.redis_url, nodes=args.nodes, webhook_urls=args.webhook_url
            )
        else:
            servers = LiveKitDevServer(binary, port=args.port, webhook_urls=args.webhook_url)
        with servers:
            nodes = servers.nodes if isinstance(servers, LiveKitCluster) else [servers]
            print(f"LIVEKIT_URL={nodes[0].url}")
            print(f"LIVEKIT_API_KEY={servers.api_key}")
            print(f"LIVEKIT_API_SECRET={servers.api_secret}", flush=True)
            if len(nodes) > 1:
                print(f"LIVEKIT_NODE_URLS={','.join(node.url for node in nodes)}", flush=True)
            try:
                while servers.running:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            if not servers.running:
                print(servers.log_tail(), file=sys.stderr)
                return 1
    except LiveKitServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
