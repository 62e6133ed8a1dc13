"""The `leadheat` command: migrate, sites create / list, and serve (a real process)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_migrates_creates_a_demo_site_and_accepts_events(tmp_path: Path) -> None:
    port = _free_port()
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
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/track",
                    auth=(write_key, ""),
                    json={"event": "Product Viewed", "anonymousId": "a"},
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["accepted"] == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()
