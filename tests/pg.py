"""A throwaway PostgreSQL cluster for tests, made with the machine's ``initdb``/``pg_ctl``.

``DURO_TEST_POSTGRES_URL`` (a database the tests may create schemas in) overrides it. As
root, the server runs as the ``postgres`` user (PostgreSQL refuses to run as root). The
cluster keeps ``fsync`` on: the tests measure durability honestly.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode, urlparse, urlunparse

__all__ = ["Cluster", "find_bin", "schema_url", "unavailable_reason"]

ENV_URL = "DURO_TEST_POSTGRES_URL"


def find_bin(name: str) -> str | None:
    """``initdb``/``pg_ctl``/... from PATH or /usr/lib/postgresql/*/bin (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parent.parent.name)
                        if Path(p).parent.parent.name.isdigit() else 0, reverse=True)
    return candidates[0] if candidates else None


def unavailable_reason(*, local: bool = False) -> str | None:
    """Why no cluster can be used here (None when one can); ``local``: one this process
    starts and controls (restarts), not DURO_TEST_POSTGRES_URL."""
    if os.environ.get(ENV_URL) and not local:
        return None
    for tool in ("initdb", "pg_ctl"):
        if find_bin(tool) is None:
            return f"no {tool} on this machine (install postgresql, or set {ENV_URL})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg / psycopg-pool are not installed (pip install 'duro[postgres]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def schema_url(base: str, schema: str, **options: str) -> str:
    """``base`` with ``?schema=...`` (and other duro options) set."""
    parts = urlparse(base)
    query = [q for q in parts.query.split("&") if q and not q.startswith("schema=")]
    query.append(urlencode({"schema": schema, **options}))
    return urlunparse(parts._replace(query="&".join(query)))


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


class Cluster:
    """One PostgreSQL server in a temporary directory (or an external one from the env).

    Args:
        listen: Addresses to listen on (the first is used in :attr:`url`).
    """

    def __init__(self, *, listen: tuple[str, ...] = ("127.0.0.1",), local: bool = False,
                 conf: dict[str, str] | None = None) -> None:
        self.listen = listen
        self.conf = dict(conf or {})
        self.external = None if local else os.environ.get(ENV_URL)
        self.dir: Path | None = None
        self.port = 0
        self.url = self.external or ""

    # -- running commands as the server's owner ------------------------------------

    @staticmethod
    def _as_owner(cmd: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return cmd
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--", *cmd]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(_quote, cmd))]

    def _run(self, cmd: list[str], *, timeout: float = 120.0) -> None:
        result = subprocess.run(self._as_owner(cmd), capture_output=True, text=True,
                                timeout=timeout, cwd="/")
        if result.returncode != 0:
            log = ""
            if self.dir is not None and (self.dir / "server.log").exists():
                log = (self.dir / "server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}\n{log}")

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Cluster:
        if self.external:
            return self
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        assert initdb and pg_ctl, unavailable_reason()
        self.dir = _owned_dir("duro-pg-")
        data = self.dir / "data"
        # --no-sync only skips flushing initdb's own files; the server runs with fsync on.
        self._run([initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync", "--no-instructions"])
        self.port = _free_port()
        conf = {
            "listen_addresses": ",".join(self.listen),
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "fsync": "on",
            "synchronous_commit": "on",
            "shared_buffers": "32MB",
            "max_connections": "300",
            "logging_collector": "off",
            "log_min_messages": "warning",
            **self.conf,
        }
        # Written as the owner (the data directory is private to it).
        lines = "".join(f"{k} = '{v}'\n" for k, v in conf.items())
        self._run(["sh", "-c", f"printf %s {_quote(lines)} >> {_quote(str(data))}/postgresql.conf"])
        if len(self.listen) > 1 or self.listen[0] not in ("127.0.0.1", "localhost"):
            rule = "host all all 0.0.0.0/0 trust\n"
            self._run(["sh", "-c",
                       f"printf %s {_quote(rule)} >> {_quote(str(data))}/pg_hba.conf"])
        self.pg_ctl("start")
        self.url = f"postgresql://postgres@{self.listen[0]}:{self.port}/postgres"
        return self

    def pg_ctl(self, action: str, *extra: str) -> None:
        """``pg_ctl start|stop|restart`` on this cluster (waits for it)."""
        assert self.dir is not None, "an external cluster cannot be controlled"
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl
        cmd = [pg_ctl, "-D", str(self.dir / "data"), "-w", "-t", "60", *extra, action]
        if action in ("start", "restart"):
            cmd[1:1] = ["-l", str(self.dir / "server.log")]
        self._run(cmd)

    def standby(self, *, name: str = "standby1") -> Cluster:
        """A streaming-replication standby of this local cluster (``pg_basebackup -R``),
        started, on a port of its own; it reports itself as ``name`` (the primary's
        ``synchronous_standby_names`` may list it)."""
        assert self.dir is not None, "an external cluster cannot be copied"
        basebackup = find_bin("pg_basebackup")
        assert basebackup, "no pg_basebackup on this machine"
        other = Cluster(listen=self.listen, local=True)
        other.dir = _owned_dir("duro-pg-standby-")
        data = other.dir / "data"
        source = (f"host={self.listen[0]} port={self.port} user=postgres "
                  f"application_name={name}")
        self._run([basebackup, "-D", str(data), "-d", source, "-X", "stream", "-R",
                   "--no-sync"])
        other.port = _free_port()
        # Its own settings; and promoted, it has no standby to wait for: the primary's
        # synchronous_standby_names (copied with the configuration) would hang every
        # commit of the new primary.
        lines = (f"port = '{other.port}'\nunix_socket_directories = '{other.dir}'\n"
                 "synchronous_standby_names = ''\n")
        other._run(["sh", "-c",
                    f"printf %s {_quote(lines)} >> {_quote(str(data))}/postgresql.conf"])
        other.pg_ctl("start")
        other.url = f"postgresql://postgres@{self.listen[0]}:{other.port}/postgres"
        return other

    def kill(self) -> None:
        """SIGKILL the server and every process of it (a machine's crash, as the database
        sees it: no shutdown, no last WAL flush)."""
        assert self.dir is not None, "an external cluster cannot be killed"
        pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                                  capture_output=True, text=True).stdout.split()
        for one in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(one, signal.SIGKILL)

    def stop(self) -> None:
        if self.external or self.dir is None:
            return
        with contextlib.suppress(Exception):
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    # -- per-test isolation ------------------------------------------------------------

    def fresh_url(self, **options: str) -> str:
        """A URL with a schema nobody else uses (created by duro's migrations)."""
        return schema_url(self.url, new_schema_name(), **options)

    def wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _owned_dir(prefix: str) -> Path:
    """A new private directory for a cluster, the server's owner's when running as root."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(0o700)
    return path


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
