"""A throwaway PostgreSQL server for tests and benchmarks: nothing outside it is touched.

:class:`TemporaryPostgres` runs ``initdb`` in a fresh temporary directory, starts
``postgres`` on a free port of 127.0.0.1 with its unix socket in that directory, and
removes everything when stopped. Run as root, the server runs as the ``postgres``
system user (PostgreSQL refuses root), through ``runuser``. Connections over TCP need
the password (SCRAM), so the store's password handling is tested for real.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

__all__ = ["TemporaryPostgres", "postgres_binaries"]

_SEARCH = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def postgres_binaries() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    for directory in (os.environ.get("ACTORWORK_PG_BIN", ""), *_SEARCH):
        if directory and (Path(directory) / "initdb").exists():
            return Path(directory)
    found = shutil.which("initdb")
    return None if found is None else Path(found).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TemporaryPostgres:
    """One PostgreSQL server in a temporary directory; :meth:`start`, then :meth:`stop`."""

    user = "actorwork"

    def __init__(
        self, binaries: Path | None = None, *, tls: tuple[bytes, bytes] | None = None
    ) -> None:
        """``tls`` is a certificate chain and its key (PEM): the server then takes
        connections over TCP with TLS only (``hostssl``), and refuses the others."""
        found = binaries or postgres_binaries()
        if found is None:
            raise FileNotFoundError("no PostgreSQL binaries (initdb) found")
        self.binaries = found
        self.password = secrets.token_hex(12)
        self.port = 0
        self.root = Path(tempfile.mkdtemp(prefix="actorwork-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        self._databases = 0
        self.tls = tls

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._as:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        pwfile.chmod(0o600)
        self._run(
            str(self.binaries / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
        )
        pwfile.unlink()
        self.port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} "
            "-c fsync=on -c max_connections=200 -c shared_buffers=64MB"
        )
        if self.tls is not None:
            options += " " + self._serve_tls(*self.tls)
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def _serve_tls(self, chain: bytes, key: bytes) -> str:
        """Write the certificate and key for the server, allow TCP over TLS only; the
        server's options that turn TLS on."""
        files = []
        for name, data in (("server.crt", chain), ("server.key", key)):
            path = self.data / name
            path.write_bytes(data)
            path.chmod(0o600)
            if self._as:
                import pwd

                os.chown(path, pwd.getpwnam("postgres").pw_uid, -1)
            files.append(path)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )
        return f"-c ssl=on -c ssl_cert_file={files[0]} -c ssl_key_file={files[1]}"

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A ``postgresql://`` URL of a database over TCP (with the password, or without)."""
        secret = f":{quote(self.password)}" if password else ""
        return f"postgresql://{self.user}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database's name."""
        self._databases += 1
        name = f"{prefix}_{self._databases}_{secrets.token_hex(3)}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` over the unix socket as the superuser; its output."""
        done = subprocess.run(
            [
                *self._as,
                str(self.binaries / "psql"),
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-At",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory; idempotent."""
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
            except subprocess.CalledProcessError:
                time.sleep(0.5)
        shutil.rmtree(self.root, ignore_errors=True)
