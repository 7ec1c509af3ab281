"""A throwaway PostgreSQL server on 127.0.0.1 and a free port (Debian's ``postgresql`` package).

It stands in for RDS in the tests and the bench: ``initdb`` into a temporary folder, ``pg_ctl``
to start it listening on TCP only, password authentication (SCRAM) for a superuser, and
``pg_ctl stop`` plus the folder's removal at the end. PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user (created by the package).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "finbatch"
PASSWORD = "finbatch-test-password"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str
    password: str
    dbname: str = "postgres"
    #: ``pg_ctl``'s arguments for this server (its data folder, log and options), for
    #: :func:`stop` and :func:`start`.
    control: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """A URL without the password (it goes through ``PGPASSWORD`` or a secret)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def params(self) -> dict[str, str]:
        return {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
        }


def bin_dir() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest version."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL's initdb was not found (on PATH or /usr/lib/postgresql/*/bin): "
            "apt-get install -y postgresql"
        )
    return Path(found[-1]).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_server_user(command: list[str]) -> list[str]:
    """Root cannot run PostgreSQL: run ``command`` as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return command
    pwd.getpwnam("postgres")  # KeyError with a clear name if the package did not create it
    return ["runuser", "-u", "postgres", "--", *command]


@contextlib.contextmanager
def local_postgres(*, durable: bool = False) -> Iterator[Server]:
    """Start a server for the duration of the block, then stop it and remove its files.

    Tests skip fsync (``durable=False``): a crash-safe disk is not what they check. The bench
    keeps PostgreSQL's defaults, as RDS does.
    """
    binaries = bin_dir()
    # Not under pytest's tmp folders: those are root-only, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="finbatch-pg-"))
    data, pwfile, log = root / "data", root / "pwfile", root / "server.log"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    port = free_port()
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}"]
    initdb += ["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"]
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    start = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options]
    try:
        try:
            subprocess.run(_as_server_user(initdb), check=True, capture_output=True)
            subprocess.run(
                _as_server_user([*start, "-w", "-t", "60", "start"]),
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as err:
            detail = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL failed to start: {err.stderr.decode(errors='replace')}{detail}"
            ) from err
        yield Server("127.0.0.1", port, USER, PASSWORD, control=tuple(start))
    finally:
        if (data / "postmaster.pid").exists():
            stop = [str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            subprocess.run(_as_server_user(stop), capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def stop(server: Server) -> None:
    """Stop the server (an outage: connections are refused until :func:`start`)."""
    data = server.control[server.control.index("-D") + 1]
    stop_cmd = [server.control[0], "-D", data, "-m", "fast", "-w", "stop"]
    subprocess.run(_as_server_user(stop_cmd), check=True, capture_output=True)


def start(server: Server) -> None:
    """Start a server that :func:`stop` stopped, on the same port with the same data."""
    subprocess.run(
        _as_server_user([*server.control, "-w", "-t", "60", "start"]),
        check=True,
        capture_output=True,
    )
