"""LiveKit across a network: a TLS terminator (nginx) and a round-trip time (Toxiproxy).

Everything listens on 127.0.0.1 and is stopped (and its files removed) on exit:

    app --TCP--> Toxiproxy (latency toxic, RTT/2 each way) --TLS bytes--> nginx (TLS 1.3 or 1.2
    on its own port, self-signed certificate) --HTTP keep-alive--> livekit-server

Toxiproxy relays bytes, so the TLS handshake and every request cross the added delay. It
terminates TCP itself, so the SYN / SYN-ACK of a new connection do not: on a real network a new
connection costs one more round trip than it does here (see the README).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .lifecycle import Started, stop_process
from .serve import free_port

TLS_VERSIONS = ("1.3", "1.2")


def find_tool(name: str, *, required_by: str) -> str:
    """``name`` on PATH, in /usr/sbin, or where ``go install`` puts binaries."""
    found = shutil.which(name)
    if found:
        return found
    candidates = [Path("/usr/sbin") / name]
    gobin = os.environ.get("GOBIN")
    if gobin:
        candidates.append(Path(gobin) / name)
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    candidates += [Path(p) / "bin" / name for p in gopath.split(os.pathsep)]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise SystemExit(f"{name} is needed for {required_by}: run benchmarks/install-tools.sh")


def tool_version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    text = (result.stdout + result.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}")


class _Daemon(Started):
    """A server on the path to LiveKit, in a session of its own, writing to a log file."""

    _process: subprocess.Popen[bytes] | None = None

    def _spawn(
        self, command: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        return self._process

    def stop(self) -> None:
        stop_process(self._process)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed (ECDSA P-256)."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def create(cls, directory: Path) -> Certificates:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca, key, csr, cert = (
            directory / name
            for name in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
        )
        ext = directory / "server.ext"
        ext.write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for command in (
            ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2"]
            + ["-subj", "/CN=flask-livekit-onboarding benchmark CA"],
            ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
            + ["-out", cert, "-days", "2", "-extfile", ext],
        ):
            subprocess.run(
                ["openssl", *map(str, command)], check=True, capture_output=True, cwd=directory
            )
        return cls(ca=ca, cert=cert, key=key)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    # One line per request: LiveKit's own service time ($upstream_response_time) and whether the
    # client opened a new TLS connection for it ($connection_requests = 1).
    log_format timing '$msec $server_port $request_time $upstream_response_time '
                      '$connection $connection_requests $ssl_protocol $status';
    access_log {dir}/access.log timing;
    # A long-lived client keeps its connections: no forced reconnect every 1,000 requests.
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_cache off;
    ssl_session_tickets off;
    upstream livekit {{
        server 127.0.0.1:{livekit_port};
        keepalive 64;
    }}
{servers}
}}
"""

NGINX_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv{version};
        location / {{
            proxy_pass http://livekit;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
"""


class NginxTLS(_Daemon):
    """nginx terminating TLS 1.3 on one port and TLS 1.2 on another, in front of livekit-server.

    Session caches and tickets are off: a client that opens a new connection pays a full
    handshake, which is what a per-request client that keeps no TLS session does anyway.
    """

    def __init__(self, binary: str, livekit_port: int, certificates: Certificates, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.ports = {version: free_port() for version in TLS_VERSIONS}
        servers = "".join(
            NGINX_SERVER.format(port=port, version=version) for version, port in self.ports.items()
        )
        self.conf = workdir / "nginx.conf"
        self.conf_text = NGINX_CONF.format(
            dir=workdir,
            cert=certificates.cert,
            key=certificates.key,
            livekit_port=livekit_port,
            servers=servers,
        )
        self.access_log = workdir / "access.log"

    def start(self) -> None:
        # Stopped with SIGTERM, nginx's fast stop (SIGQUIT is its graceful one): either way the
        # master reaps its worker before it exits.
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.conf_text)
        log = self.workdir / "nginx.out"
        process = self._spawn(
            [self.binary, "-p", str(self.workdir), "-e", str(self.workdir / "error.log")]
            + ["-c", str(self.conf)],
            log,
        )
        for port in self.ports.values():
            _wait_port(port, process, "nginx", log)

    def log_lines(
        self, since: float, until: float, port: int | None = None
    ) -> list[dict[str, Any]]:
        """Access-log entries whose completion time lies in [since, until] (epoch seconds)."""
        entries: list[dict[str, Any]] = []
        try:
            text = self.access_log.read_text(errors="replace")
        except OSError:
            return entries
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            try:
                at = float(fields[0])
            except ValueError:
                continue
            if not since <= at <= until or (port is not None and fields[1] != str(port)):
                continue
            upstream = fields[3].split(",")[-1].strip()
            entries.append(
                {
                    "at": at,
                    "request_time_ms": 1000 * float(fields[2]),
                    "upstream_ms": 1000 * float(upstream) if upstream not in ("-", "") else None,
                    "connection": fields[4],
                    "connection_requests": int(fields[5]),
                    "tls": fields[6],
                    "status": int(fields[7]),
                }
            )
        return entries


class Toxiproxy(_Daemon):
    """toxiproxy-server on loopback with one proxy per TLS port, each with a latency toxic per
    direction; :meth:`set_rtt` changes the round-trip time the proxies add."""

    def __init__(self, binary: str, upstreams: dict[str, int], workdir: Path) -> None:
        self.binary = binary
        self.api_port = free_port()
        self.upstreams = upstreams
        self.ports = {name: free_port() for name in upstreams}
        self.log = workdir / "toxiproxy.log"
        self.rtt_ms = 0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        process = self._spawn(
            [self.binary, "-host", "127.0.0.1", "-port", str(self.api_port)],
            self.log,
            env={**os.environ, "LOG_LEVEL": "warn"},
        )
        _wait_port(self.api_port, process, "toxiproxy-server", self.log)
        for name, upstream in self.upstreams.items():
            self._api(
                "POST",
                "/proxies",
                {
                    "name": name,
                    "listen": f"127.0.0.1:{self.ports[name]}",
                    "upstream": f"127.0.0.1:{upstream}",
                    "enabled": True,
                },
            )
            for stream in ("upstream", "downstream"):
                self._api(
                    "POST",
                    f"/proxies/{name}/toxics",
                    {
                        "name": f"half-rtt-{stream}",
                        "type": "latency",
                        "stream": stream,
                        "toxicity": 1.0,
                        "attributes": {"latency": 0, "jitter": 0},
                    },
                )

    def set_rtt(self, rtt_ms: int) -> None:
        """Half the round trip on the way to nginx, half on the way back (whole milliseconds)."""
        if rtt_ms % 2:
            raise ValueError("the round-trip time must be an even number of milliseconds")
        for name in self.upstreams:
            for stream in ("upstream", "downstream"):
                self._api(
                    "POST",
                    f"/proxies/{name}/toxics/half-rtt-{stream}",
                    {"attributes": {"latency": rtt_ms // 2, "jitter": 0}},
                )
        self.rtt_ms = rtt_ms

    def _api(self, method: str, path: str, body: dict[str, Any]) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=10)
        try:
            connection.request(
                method, path, body=json.dumps(body), headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError(f"toxiproxy {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None


def check_verification(port: int, ca: Path) -> dict[str, str]:
    """Prove the apps verify LiveKit's certificate: the system trust store refuses it, the
    benchmark's CA accepts it. Returns what each attempt saw."""
    seen = {}
    for label, context in (
        ("system trust store", ssl.create_default_context()),
        ("benchmark CA", ssl.create_default_context(cafile=str(ca))),
    ):
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            seen[label] = f"HTTP {response.status}"
        except ssl.SSLCertVerificationError as error:
            seen[label] = f"refused: {error.verify_message}"
        finally:
            connection.close()
    if not seen["system trust store"].startswith("refused") or seen["benchmark CA"] != "HTTP 200":
        raise RuntimeError(f"certificate verification does not behave as expected: {seen}")
    return seen


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="livekit-bench-remote-"))
