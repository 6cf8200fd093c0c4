"""Start and stop real services on loopback for tests, without pytest.

Every ``start_*`` function returns a small dataclass handle with a ``stop()``
method. Processes are stopped by the pid this module started (and, for the
Docker engine, containerd, shims and container processes, found as that pid's
descendants or by the engine's unique temp path); nothing is matched by name.
A missing binary raises :class:`ServiceUnavailable`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.harness import procs
from tests.harness.ports import LOOPBACK, WaitTimeout, free_port, log_tail, wait_until

START_ATTEMPTS = 3  # a free_port() can be taken by someone else before we bind it


class ServiceUnavailable(RuntimeError):
    """A service cannot run on this machine (binary, module or privilege missing)."""


def _port_clash(process: subprocess.Popen, log: Path) -> bool:
    return process.poll() is not None and "in use" in log_tail(log, 200)


def _require_binary(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServiceUnavailable(f"{name} not found on PATH ({why})")
    return path


# --------------------------------------------------------------------------- HTTP


@dataclass
class HttpResponse:
    """Status, headers and body of one HTTP exchange."""

    status: int
    headers: dict[str, str]
    body: bytes


# An opener without proxy handlers: test traffic must stay on loopback even if
# HTTP_PROXY happens to be set in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> HttpResponse:
    """Send one request (never through a proxy) and return the response, 4xx/5xx included."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpResponse(response.status, dict(response.headers.items()), response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResponse(exc.code, dict(exc.headers.items()), exc.read())


def _answers(url: str, status: int = 200, body: bytes | None = None) -> bool:
    response = http_request("GET", url, timeout=2)
    return response.status == status and (body is None or response.body == body)


# ------------------------------------------------------------------ Docker engine


@dataclass
class DockerEngine:
    """A private dockerd; ``host`` is ``unix:///…/docker.sock``."""

    host: str
    socket_path: Path
    root: Path
    log: Path
    process: subprocess.Popen
    _images: set[str] = field(default_factory=set)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """A copy of ``base`` (default ``os.environ``) with DOCKER_HOST pointing here.

        Context/TLS variables are dropped so they cannot redirect the client.
        """
        env = dict(os.environ if base is None else base)
        for name in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            env.pop(name, None)
        env["DOCKER_HOST"] = self.host
        return env

    def client(self) -> Any:
        """A ``docker.DockerClient`` for this engine (close it when done)."""
        import docker

        return docker.DockerClient(base_url=self.host)

    def import_busybox_image(self, tag: str = "mlship-test/busybox:latest") -> str:
        """Import a one-binary image made from /bin/busybox as ``tag`` and return the tag.

        Works offline (no Docker Hub); every busybox applet (sh, echo, wget, …)
        is a symlink in /bin. Importing the same tag twice is a no-op.
        """
        if tag in self._images:
            return tag
        data = _busybox_rootfs_tar()
        repository, _, version = tag.rpartition(":")
        if not repository or "/" in version:  # no tag given, or the ":" was a registry port
            repository, version = tag, "latest"
        with contextlib.closing(self.client()) as client:
            client.api.import_image_from_data(
                data, repository=repository, tag=version,
                changes=['ENV PATH=/bin', 'CMD ["/bin/sh"]'],
            )
            client.images.get(tag)  # raises if the import did not produce the tag
        self._images.add(tag)
        return tag

    def stop(self) -> None:
        """Stop dockerd and its containerd/shims, unmount leftovers, delete the temp dir."""
        helpers = self._helpers()
        self._kill_containers()
        procs.stop_process(self.process, timeout=30)
        procs.kill(helpers + self._helpers())
        procs.wait_reaped(helpers)
        procs.remove_tree(self.root)

    def _helpers(self) -> list[procs.Proc]:
        # containerd is dockerd's child; shims daemonize away to init but carry
        # our unique temp path in their command line; container processes are
        # the shims' children (and outlive them if dockerd crashed).
        shims = procs.mentioning(str(self.root))
        in_containers = [proc for shim, _ in shims for proc in procs.descendants(shim)]
        return procs.descendants(self.process.pid) + shims + in_containers

    def _kill_containers(self) -> None:
        # dockerd's own shutdown gives each container 10 s to react to SIGTERM
        # (`sleep` as pid 1 never does); SIGKILL them first to stop quickly.
        if self.process.poll() is not None:
            return
        try:
            import docker

            with contextlib.closing(docker.DockerClient(base_url=self.host, timeout=10)) as client:
                for container in client.containers.list():
                    container.kill()
        except Exception:  # noqa: BLE001 - best effort; the daemon's shutdown still stops them
            pass


def _busybox_rootfs_tar(busybox: str = "/bin/busybox") -> bytes:
    if not os.path.exists(busybox):
        raise ServiceUnavailable(f"{busybox} not found (install busybox-static)")
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=False)
    applets = sorted(set(listed.stdout.split()) - {"busybox"}) or ["sh", "echo", "cat", "wget"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ):
            payload = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(payload), 0o644
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _docker_ping(socket_path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(socket_path))
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        reply = sock.recv(4096)
    return reply.split(b"\r\n", 1)[0].split()[1:2] == [b"200"]


def start_docker_engine(timeout: float = 60, extra_args: tuple[str, ...] = ()) -> DockerEngine:
    """Start a private dockerd (host networking only) and wait until it answers /_ping.

    `extra_args` go to dockerd as they are (a second listener: -H tcp://127.0.0.1:PORT --tlsverify ...)."""
    dockerd = _require_binary("dockerd", "Debian package docker.io")
    _require_binary("containerd", "Debian package containerd, pulled in by docker.io")
    _require_binary("runc", "Debian package runc, pulled in by docker.io")
    if os.geteuid() != 0:
        raise ServiceUnavailable("dockerd needs root in this harness (no rootless setup)")
    # Short base path: the engine and containerd put unix sockets under it,
    # and socket paths are limited to ~108 bytes.
    root = Path(tempfile.mkdtemp(prefix="mlship-dk-", dir="/tmp"))
    sock, log = root / "docker.sock", root / "dockerd.log"
    config = root / "daemon.json"
    config.write_text("{}\n")  # isolates us from /etc/docker/daemon.json
    argv = [
        dockerd, "--config-file", str(config),
        "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
        "-H", f"unix://{sock}", "--pidfile", str(root / "docker.pid"),
        "--bridge=none", "--iptables=false", "--ip-masq=false", *extra_args,
    ]
    process = procs.spawn(argv, log)
    engine = DockerEngine(f"unix://{sock}", sock, root, log, process)
    try:
        wait_until(lambda: _docker_ping(sock), timeout, "dockerd /_ping", log=log, process=process)
    except BaseException:
        engine.stop()
        raise
    return engine


# ------------------------------------------------------------------- OCI registry


@dataclass
class OciRegistry:
    """Debian's docker-registry (distribution 2.x); plain HTTP on ``address``."""

    url: str
    address: str
    port: int
    root: Path
    log: Path
    process: subprocess.Popen

    def stop(self) -> None:
        """Stop the registry and delete its storage."""
        procs.stop_process(self.process, timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _registry_config(storage: Path, port: int, htpasswd: Path | None = None) -> str:
    # JSON is valid YAML, so no YAML writer is needed.
    auth = {"auth": {"htpasswd": {"realm": "mlship-test", "path": str(htpasswd)}}} if htpasswd else {}
    return json.dumps({**auth,
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"{LOOPBACK}:{port}", "secret": "mlship-test-secret"},
    }, indent=2)


def start_oci_registry(timeout: float = 20, users: dict[str, str] | None = None) -> OciRegistry:
    """Start a registry with filesystem storage in a temp dir; ready when GET /v2/
    answers (200, or 401 when `users` turns on htpasswd basic auth)."""
    binary = _require_binary("docker-registry", "Debian package docker-registry")
    root = Path(tempfile.mkdtemp(prefix="mlship-reg-"))
    log = root / "registry.log"
    htpasswd = None
    if users:
        import bcrypt

        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                                    for u, p in users.items()))
    ready = 401 if users else 200

    def launch(port: int) -> tuple[OciRegistry, Callable[[], bool]]:
        config = root / "config.yml"
        config.write_text(_registry_config(root / "storage", port, htpasswd))
        url = f"http://{LOOPBACK}:{port}"
        registry = OciRegistry(url, f"{LOOPBACK}:{port}", port, root, log, procs.spawn([binary, "serve", str(config)], log))
        return registry, lambda: _answers(f"{url}/v2/", ready)

    return _launch_on_free_port(launch, root, log, timeout, "docker-registry GET /v2/")


def _launch_on_free_port(launch: Callable[[int], tuple[Any, Callable[[], bool]]], root: Path, log: Path,
                         timeout: float, what: str) -> Any:
    """Start a server on a free port until it answers; try another port when the first one was taken."""
    for attempt in range(START_ATTEMPTS):
        handle, answers = launch(free_port())
        try:
            wait_until(answers, timeout, what, log=log, process=handle.process)
            return handle
        except WaitTimeout:
            procs.stop_process(handle.process, timeout=5)
            if attempt + 1 < START_ATTEMPTS and _port_clash(handle.process, log):
                continue
            shutil.rmtree(root, ignore_errors=True)
            raise
    raise AssertionError("unreachable")


# ------------------------------------------------------------ moto (S3, ECR, ...)

DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


@dataclass
class MotoServer:
    """An in-process moto server (S3, ECR, SageMaker, …) on ``endpoint_url``."""

    endpoint_url: str
    port: int
    server: Any

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` aimed at this server, with dummy credentials.

        Credentials and region are passed explicitly; ``os.environ`` is left alone.
        """
        import boto3
        from botocore.config import Config

        # Path-style S3 URLs: virtual-host style would need DNS for bucket names.
        config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
        options = {"endpoint_url": self.endpoint_url, "region_name": REGION, "config": config}
        return boto3.client(service, **{**options, **DUMMY_CREDENTIALS, **kwargs})

    def reset(self) -> None:
        """Drop all state (buckets, repositories, endpoints) in the server."""
        response = http_request("POST", f"{self.endpoint_url}/moto-api/reset", data=b"")
        if response.status != 200:
            raise RuntimeError(f"moto reset failed: {response.status} {response.body[:200]!r}")

    def stop(self) -> None:
        """Shut the server thread down."""
        self.server.stop()


def start_moto_server(timeout: float = 20) -> MotoServer:
    """Start ``ThreadedMotoServer`` on 127.0.0.1 and wait until it answers."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise ServiceUnavailable(f"moto[server] is not installed: {exc}") from exc
    from tests.harness.moto_sagemaker import add_update_endpoint

    add_update_endpoint()  # moto has no UpdateEndpoint (see moto_sagemaker.py)
    # Port 0: the kernel picks the port while binding, so there is no race.
    # (With a taken port, ThreadedMotoServer.start() would wait forever.)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    handle = MotoServer(f"http://{LOOPBACK}:{port}", port, server)
    try:
        wait_until(lambda: _answers(f"{handle.endpoint_url}/moto-api/data.json"), timeout, "moto server")
    except BaseException:
        handle.stop()
        raise
    return handle


# -------------------------------------------------------------------------- nginx

HttpConf = str | Callable[[int], str]
"""Body of nginx's ``http {}`` block: a callable given the listen port, or a
string in which ``__PORT__`` is replaced by that port."""


def proxy_conf(*upstreams: str) -> Callable[[int], str]:
    """An ``http {}`` body proxying everything to ``upstreams`` ("127.0.0.1:PORT", round robin)."""
    servers = "".join(f"        server {address};\n" for address in upstreams)

    def render(port: int) -> str:
        return (
            f"    upstream mlship_backend {{\n{servers}    }}\n"
            f"    server {{\n        listen {LOOPBACK}:{port};\n"
            f"        location / {{ proxy_pass http://mlship_backend; }}\n    }}\n"
        )

    return render


@dataclass
class Nginx:
    """nginx in the foreground with everything (config, logs, temp, pid) in ``prefix``."""

    url: str
    port: int
    prefix: Path
    conf_path: Path
    log: Path
    process: subprocess.Popen
    binary: str
    control_port: int
    generation: int = 1

    def reload(self, http_conf: HttpConf, timeout: float = 15) -> None:
        """Replace the ``http {}`` body, reload, and wait until new workers serve it.

        The config is checked with ``nginx -t`` first; a bad config raises and
        leaves the running one in place.
        """
        generation = self.generation + 1
        candidate = self.prefix / "nginx.conf.next"
        candidate.write_text(_nginx_conf(self.prefix, self.port, self.control_port, generation, http_conf))
        check = subprocess.run(
            [self.binary, "-q", "-t", "-p", str(self.prefix), "-c", str(candidate)],
            capture_output=True, text=True, check=False,
        )
        if check.returncode != 0:
            raise ValueError(f"nginx rejected the new config:\n{check.stderr}")
        candidate.replace(self.conf_path)
        old_workers = procs.descendants(self.process.pid)
        subprocess.run(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf_path), "-s", "reload"],
            capture_output=True, check=True,
        )
        # Old workers finish their connections; a new connection answering the
        # new generation number proves the new config is live.
        wait_until(lambda: self._serves_generation(generation), timeout, "nginx reload", log=self.log, process=self.process)
        # Until the old workers exit they can still accept on the shared
        # listening sockets and answer with the old config.
        wait_until(lambda: not procs.alive(old_workers), timeout, "old nginx workers exit", log=self.log, process=self.process)
        self.generation = generation

    def _serves_generation(self, generation: int) -> bool:
        return _answers(f"http://{LOOPBACK}:{self.control_port}/__harness/generation", body=str(generation).encode())

    def stop(self) -> None:
        """Stop nginx (SIGTERM = fast shutdown) and delete the prefix."""
        workers = procs.descendants(self.process.pid)
        procs.stop_process(self.process, timeout=10)
        procs.kill(workers)  # only matters if the master had to be SIGKILLed
        shutil.rmtree(self.prefix, ignore_errors=True)


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def _nginx_conf(prefix: Path, port: int, control_port: int, generation: int, http_conf: HttpConf) -> str:
    body = http_conf(port) if callable(http_conf) else http_conf.replace("__PORT__", str(port))
    temp = prefix / "temp"
    # As root, workers would otherwise run as nobody and fail to read 0700 temp dirs.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""# generated by tests/harness/services.py
daemon off;
master_process on;
worker_processes 1;
{user}pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;

    # Harness control server: tells reload() which config generation is live.
    server {{
        listen {LOOPBACK}:{control_port};
        location = /__harness/generation {{ return 200 "{generation}"; }}
    }}

{body}
}}
"""


DEFAULT_NGINX_CONF = (
    "    server {\n        listen 127.0.0.1:__PORT__;\n"
    '        location / { return 200 "mlship harness nginx\\n"; }\n    }\n'
)


def start_nginx(http_conf: HttpConf = DEFAULT_NGINX_CONF, timeout: float = 15) -> Nginx:
    """Start nginx with ``http_conf`` as the ``http {}`` body on a free port."""
    binary = _require_binary("nginx", "Debian package nginx")
    prefix = Path(tempfile.mkdtemp(prefix="mlship-nginx-"))
    for sub in ("logs", "temp"):
        (prefix / sub).mkdir()
    log = prefix / "logs" / "error.log"
    for attempt in range(START_ATTEMPTS):
        port, control_port = _two_free_ports()
        conf = prefix / "nginx.conf"
        conf.write_text(_nginx_conf(prefix, port, control_port, 1, http_conf))
        # -e: errors before the config is read go to our log, not /var/log.
        process = procs.spawn([binary, "-p", str(prefix), "-c", str(conf), "-e", str(log)], log)
        handle = Nginx(f"http://{LOOPBACK}:{port}", port, prefix, conf, log, process, binary, control_port)
        try:
            wait_until(lambda: handle._serves_generation(1), timeout, "nginx start", log=log, process=process)
            return handle
        except WaitTimeout:
            procs.stop_process(process, timeout=5)
            if attempt + 1 < START_ATTEMPTS and _port_clash(process, log):
                continue
            shutil.rmtree(prefix, ignore_errors=True)
            raise
    raise AssertionError("unreachable")


# ------------------------------------------------------------- tiny HTTP upstream


@dataclass
class HttpUpstream:
    """A thread serving a fixed body for every GET/POST; ``requests`` records paths."""

    url: str
    address: str
    port: int
    body: bytes
    server: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_http_upstream(body: bytes | str, status: int = 200, content_type: str = "text/plain") -> HttpUpstream:
    """Serve ``body`` on a free 127.0.0.1 port from a background thread."""
    payload = body.encode() if isinstance(body, str) else body
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            seen.append(self.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # keep pytest output quiet

    server = ThreadingHTTPServer((LOOPBACK, 0), Handler)  # port 0: no race
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="http-upstream", daemon=True)
    thread.start()
    port = server.server_address[1]
    return HttpUpstream(f"http://{LOOPBACK}:{port}", f"{LOOPBACK}:{port}", port, payload, server, thread, seen)


# ------------------------------------------------------------------ Prometheus


@dataclass
class Prometheus:
    """Debian's prometheus scraping loopback targets every second; HTTP API on ``url``."""

    url: str
    port: int
    root: Path
    log: Path
    process: subprocess.Popen

    def query(self, promql: str) -> dict:
        import urllib.parse

        response = http_request("GET", f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        return json.loads(response.body)

    def stop(self) -> None:
        procs.stop_process(self.process, timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_prometheus(targets: list[str], timeout: float = 30) -> Prometheus:
    """Start prometheus with a 1 s scrape of ``targets`` (host:port of /metrics endpoints)."""
    binary = _require_binary("prometheus", "Debian package prometheus")
    root = Path(tempfile.mkdtemp(prefix="mlship-prom-"))
    log = root / "prometheus.log"
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n  - job_name: mlship\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n")
    def launch(port: int) -> tuple[Prometheus, Callable[[], bool]]:
        process = procs.spawn([binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
                               f"--web.listen-address={LOOPBACK}:{port}", "--log.level=warn"], log)
        url = f"http://{LOOPBACK}:{port}"
        return Prometheus(url, port, root, log, process), lambda: _answers(f"{url}/-/ready")

    return _launch_on_free_port(launch, root, log, timeout, "prometheus /-/ready")
