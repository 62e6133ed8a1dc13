"""The `leadheat` command: migrate, sites create / list, and serve (a real process); its
help, version, and a port that is taken."""

import argparse
import os
import re
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import build_parser
from tests.helpers import free_port, setting_of, wait_until


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


def test_version_is_the_package_version(repo_root: Path) -> None:
    version = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["version"]
    done = run_cli("--version", env={})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"leadheat {version}\n"


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command's parser, with the words that name it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def _setting_default(variable: str) -> object:
    """The default of the setting a LEADHEAT_ variable sets; fails if there is none."""
    field = setting_of(variable)
    assert field is not None, f"{variable} is no setting"
    return field.get_default(call_default_factory=True)


def test_every_option_says_its_default_and_its_environment_variable() -> None:
    options = 0
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if not action.option_strings or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            options += 1
            where = f"leadheat {' '.join(path)} {action.option_strings[0]}"
            text = action.help or ""
            assert "default: " in text or "(required;" in text, f"{where}: no default: {text!r}"
            named = re.search(r"\(default: (.+); environment: (LEADHEAT_\w+)\)$", text)
            if named:  # the option overrides a setting: its default is the setting's
                default, variable = named.groups()
                assert default == str(_setting_default(variable)), where
            else:
                assert "no environment variable" in text or "LEADHEAT_" in text, where
                if "LEADHEAT_" in text:
                    _setting_default(re.findall(r"LEADHEAT_\w+", text)[0])
    assert options >= 8  # serve's six, sites create's two


def test_serve_help_describes_every_option() -> None:
    done = run_cli("serve", "--help", env={})
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())  # argparse wraps lines
    for option, variable, default in [
        ("--host HOST", "LEADHEAT_HOST", "127.0.0.1"),
        ("--port PORT", "LEADHEAT_PORT", "8000"),
        ("--workers N", "LEADHEAT_WORKERS", "1"),
        ("--header-timeout SECONDS", "LEADHEAT_HTTP__HEADER_TIMEOUT_SECONDS", "5.0"),
        ("--body-timeout SECONDS", "LEADHEAT_HTTP__BODY_TIMEOUT_SECONDS", "30.0"),
    ]:
        described = re.search(
            re.escape(option)
            + r" [^-]*?\(default: "
            + re.escape(default)
            + "; environment: "
            + variable
            + r"\)",
            help_text,
        )
        assert described, f"{option} is not described with its default and variable"
    assert "LEADHEAT_AUTO_MIGRATE=false" in help_text
    assert "LEADHEAT_DATABASE_URL" in help_text


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "reuse-port"])
def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path, reuse_port: bool) -> None:
    """Taken by any process, or by another `serve --workers N` (SO_REUSEPORT sockets, which
    the workers' own would silently share): one line, status 2, before touching the database."""
    database = tmp_path / "taken.db"
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"]
            if reuse_port
            else [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env={**os.environ, "LEADHEAT_DATABASE_URL": f"sqlite+aiosqlite:///{database}"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no traceback
    assert done.stderr.startswith(f"leadheat: cannot listen on 127.0.0.1:{port}:")
    assert "another process listens there" in done.stderr
    assert "Leadheat listening" not in done.stdout
    assert not database.exists()
