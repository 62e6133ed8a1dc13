"""A throwaway PostgreSQL cluster (initdb, pg_ctl) on a free port in a temp dir, for tests
that stop and start PostgreSQL: never the shared server on 5432."""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import free_port

OPTIONS = "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60 -c shared_buffers=16MB"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if not found:
        pytest.skip("no initdb under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def _version(path: str) -> int:
    return int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0


class ThrowawayCluster:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="leadheat-pg-"))
        self.data = self.dir / "data"
        # initdb refuses to run as root: as the postgres user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/leadheat"
        self.admin_dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.as_user, str(self.bin / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self, *, wait: bool = True, standby: bool = False) -> None:
        """Start; without `wait`, return at once (the server is still starting up). As a
        standby without hot standby, it stays "not accepting connections" until promoted."""
        options = f"{OPTIONS} -p {self.port} -k {self.dir}"
        if standby:
            (self.data / "standby.signal").touch()
            if self.as_user:
                shutil.chown(self.data / "standby.signal", "postgres")
            options += " -c hot_standby=off"
        self._run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.dir / "log"),
            "-o", options, "-w" if wait else "-W",
        )  # fmt: skip

    def stop(self, mode: str) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w")

    def promote(self) -> None:
        self._run("pg_ctl", "promote", "-D", str(self.data), "-w")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.dir, ignore_errors=True)
