"""The wheel, installed as a user installs it (not editable, outside the source tree), migrates
SQLite and PostgreSQL, serves, and takes and gives back an event.

One wheel and one virtualenv a test session. The wheel is built from a copy of exactly what
the Dockerfile's build stage copies (pyproject.toml, README.md, app/), with the setuptools of
the test environment (no build isolation: no download). The virtualenv is fresh: only the
wheel is installed in it. Its dependencies are not downloaded either: a `.pth` line adds the
test environment's site-packages *after* the virtualenv's own. A line in a `.pth` file adds a
directory without reading the `.pth` files in it, so the editable install of the source tree
(itself a `.pth` file there) stays out of sight, where `venv --system-site-packages` would
bring it in; the test checks that `app` is imported from the virtualenv. What this leaves
untested is the dependency list itself, which `pip install` of the wheel (as the Dockerfile
does) resolves.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import DATABASES, new_database
from tests.factories import basic_auth, bearer
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 180  # seconds, for each build and install step


@dataclass(frozen=True)
class Installed:
    venv: Path
    bin: Path
    home: Path  # a directory outside the source tree, the commands' working directory

    def env(self, **variables: str) -> dict[str, str]:
        keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "LEADHEAT_SECRETS_KEY"}
        base = {name: value for name, value in os.environ.items() if name in keep}
        return {**base, "LEADHEAT_CREATE_DEMO_SITE": "false", **variables}

    def run(self, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "leadheat"), *args],
            cwd=self.home,
            env=self.env(**variables),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


def _step(*cmd: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    dist = work / "dist"
    _step(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "--wheel-dir", dist, source,
    )  # fmt: skip
    (wheel,) = dist.glob("leadheat-*.whl")

    venv = work / "venv"
    _step(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _step(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel,
    )  # fmt: skip
    site_packages = _step(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    dependencies = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site_packages.strip()) / "leadheat_test_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(dependencies))
    )
    home = work / "home"
    home.mkdir()
    return Installed(venv, venv / "bin", home)


def test_the_package_is_imported_from_the_virtualenv_with_all_its_files(installed: Installed):
    where = installed.run("--version")  # the console script works
    assert where.returncode == 0, where.stderr
    app_dir = _step(
        installed.bin / "python", "-c", "import app, os; print(os.path.dirname(app.__file__))",
        cwd=installed.home,
    ).strip()  # fmt: skip
    assert Path(app_dir).is_relative_to(installed.venv), app_dir  # not the source tree
    shipped = {p.relative_to(app_dir) for p in Path(app_dir).rglob("*") if p.is_file()}
    source = {
        p.relative_to(ROOT / "app")
        for p in (ROOT / "app").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    missing = sorted(str(p) for p in source - shipped)
    assert not missing, f"files of app/ the wheel does not ship: {missing}"
    assert Path("migrations/env.py") in shipped


def test_version_is_the_projects(installed: Installed):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = installed.run("--version")
    assert done.stdout == f"leadheat {version}\n"


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_database(request.param, tmp_path) as url:
        yield url


def test_the_wheel_migrates_serves_and_keeps_an_event(
    installed: Installed, empty_database_url: str
):
    database = {"LEADHEAT_DATABASE_URL": empty_database_url}
    migrated = installed.run("migrate", **database)
    assert migrated.returncode == 0, migrated.stderr
    assert "Database is up to date." in migrated.stdout
    created = installed.run("sites", "create", "--name", "Wheel shop", **database)
    assert created.returncode == 0, created.stderr
    keys = dict(line.split(":", 1) for line in created.stdout.splitlines())
    write_key, secret_key = keys["Write key"].split()[0], keys["Secret key"].split()[0]

    port = free_port()
    server = subprocess.Popen(
        [str(installed.bin / "leadheat"), "serve", "--port", str(port)],
        cwd=installed.home,
        env=installed.env(**database),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def healthy() -> httpx.Response | None:
                """the installed server answers /health"""
                assert server.poll() is None, f"serve exited: {server.communicate()[1]}"
                try:
                    return client.get("/health")
                except httpx.TransportError:
                    return None

            health = wait_until(healthy, timeout=60)
            assert health.status_code == 200
            assert health.json() == {"status": "ok", "database": "ok"}

            tracked = client.post(
                "/v1/track",
                auth=basic_auth(write_key),
                json={
                    "event": "Product Viewed",
                    "anonymousId": "wheel-visitor",
                    "messageId": "wheel-1",
                    "properties": {"category": "fridges", "price": 499},
                },
            )
            assert tracked.status_code == 200, tracked.text
            assert tracked.json()["accepted"] == 1

            leads = client.get("/v1/leads", headers=bearer(secret_key))
            assert leads.status_code == 200, leads.text
            (lead,) = leads.json()["data"]
            card = client.get(f"/v1/leads/{lead['id']}", headers=bearer(secret_key)).json()
            assert [(e["message_id"], e["name"]) for e in card["timeline"]] == [
                ("wheel-1", "Product Viewed")
            ]
            assert card["interests"] == {"fridges": 1}

            # What is read from the package's files: the dashboard, the docs' assets.
            home = client.get("/", follow_redirects=True)
            assert home.status_code == 200
            assert home.url.path == "/dashboard"
            docs = client.get("/docs")
            assert docs.status_code == 200
            assert client.get("/docs/assets/swagger-ui.css").status_code == 200
            assert client.get("/tracker.js").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
