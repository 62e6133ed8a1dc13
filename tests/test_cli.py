"""The `leadheat` command: migrate, sites create / list, and serve (a real process)."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_then_create_and_list_sites(tmp_path: Path) -> None:
    env = {"LEADHEAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = run_cli(
        "sites", "create", "--name", "Fridge shop", "--origin", "https://shop.example", env=env
    )
    assert created.returncode == 0, created.stderr
    assert "wk_" in created.stdout
    assert "sk_" in created.stdout
    listed = run_cli("sites", "list", env=env)
    assert "Fridge shop" in listed.stdout
    assert "https://shop.example" in listed.stdout
    assert "sk_" not in listed.stdout  # the secret key is shown once, never again


def test_serve_migrates_creates_a_demo_site_and_accepts_events(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "LEADHEAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "LEADHEAT_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        while not any("listening" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "serve exited: " + "".join(lines)
            lines.append(line)
        write_key = next(line.split()[2] for line in lines if line.startswith("Write key:"))

        def answer() -> httpx.Response | None:
            """the server answers"""
            try:
                return httpx.post(
                    f"http://127.0.0.1:{port}/v1/track",
                    auth=(write_key, ""),
                    json={"event": "Product Viewed", "anonymousId": "a"},
                )
            except httpx.ConnectError:
                return None

        response = wait_until(answer, timeout=20)
        assert response.status_code == 200
        assert response.json()["accepted"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                    inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(target[8:-1])
    except OSError:
        pass
    return found


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.append(int(entry))
            except OSError:
                continue
    return children


def _workers_listening(parent: int, port: int) -> dict[int, set[str]]:
    listening = _listening_inodes(port)
    return {
        child: _socket_inodes(child) & listening
        for child in _children(parent)
        if _socket_inodes(child) & listening
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; SO_REUSEPORT")
def test_serve_gives_each_worker_its_own_socket_and_replaces_a_dead_one(tmp_path: Path) -> None:
    """With --workers 2 each worker listens on its own SO_REUSEPORT socket (the kernel spreads
    connections between them); the parent keeps none, so a worker that dies takes its socket
    away and no connection is queued where nobody accepts."""
    port = free_port()
    env = {
        **os.environ,
        "LEADHEAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "LEADHEAT_CREATE_DEMO_SITE": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def two_workers() -> dict[int, set[str]] | None:
        """two workers listen"""
        assert proc.poll() is None, "serve exited"
        workers = _workers_listening(proc.pid, port)
        return workers if len(workers) == 2 else None

    def every_connection_answers(count: int) -> None:
        # A fresh connection each time: the kernel picks a socket. A new worker listens before
        # its app has started, so a connection may wait for its startup on a loaded machine.
        for _ in range(count):
            with httpx.Client(timeout=30) as client:
                assert client.get(f"http://127.0.0.1:{port}/health").status_code == 200

    try:
        workers = wait_until(two_workers, timeout=30)
        (first, first_sockets), (second, second_sockets) = workers.items()
        assert first_sockets.isdisjoint(second_sockets)  # two sockets, not one shared
        assert not _socket_inodes(proc.pid) & _listening_inodes(port)  # the parent holds none
        every_connection_answers(20)

        os.kill(first, 9)

        def replaced_workers() -> dict[int, set[str]] | None:
            """a new worker listens in place of the killed one"""
            workers = two_workers()
            return workers if workers and first not in workers else None

        replaced = wait_until(replaced_workers, timeout=30)
        assert second in replaced
        assert len(_listening_inodes(port)) == 2  # the dead worker's socket is gone
        every_connection_answers(20)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


SERVED_APP_GC = """
import asyncio, gc
from app.main import create_served_app, create_app

async def main():
    for factory in (create_app, create_served_app):
        gc.set_threshold(700, 10, 10)
        app = factory()
        async with app.router.lifespan_context(app):
            print(factory.__name__, gc.get_threshold(), gc.get_freeze_count() > 0)
        gc.unfreeze()

asyncio.run(main())
"""


def test_the_served_app_tunes_the_garbage_collector_once_started(tmp_path: Path) -> None:
    # In a process of its own, as `leadheat serve` runs it: the test process keeps its defaults.
    env = {
        "LEADHEAT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gc.db",
        "LEADHEAT_RUN_BACKGROUND": "false",
    }
    assert run_cli("migrate", env=env).returncode == 0
    out = subprocess.run(
        [sys.executable, "-c", SERVED_APP_GC],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert out == [
        "create_app (700, 10, 10) False",  # the app in tests and embedded use: untouched
        "create_served_app (50000, 20, 20) True",
    ]
