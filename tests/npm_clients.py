"""Third-party clients from the npm registry (tests/clients/package.json, pinned by its
lock file): installed once with `npm ci`, bundled for the browser with esbuild as a shop's own
build would. Without Node.js the tests that need them skip, and fail when CI=true."""

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CLIENTS = Path(__file__).resolve().parent / "clients"
_STAMP = CLIENTS / "node_modules" / ".leadheat-lock-sha256"


def _need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed: cannot run the npm tracking clients"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is an error)")
    pytest.skip(reason)


def _run(*cmd: str, timeout: float = 300, stdin: str | None = None) -> str:
    done = subprocess.run(
        cmd,
        cwd=CLIENTS,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install() -> Path:
    """`npm ci` unless node_modules already holds what the lock file pins."""
    _need("node", "npm")
    lock = hashlib.sha256((CLIENTS / "package-lock.json").read_bytes()).hexdigest()
    # One install at a time: `make test` runs test files in two processes (pytest-xdist), and
    # two `npm ci` in one directory remove each other's files.
    with open(Path(tempfile.gettempdir()) / "leadheat-npm-clients.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (_STAMP.exists() and _STAMP.read_text() == lock):
            # No install scripts: none of these packages needs one to run (esbuild's binary
            # comes as an optional dependency; bull's native msgpack extension is optional).
            _run("npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
            _STAMP.write_text(lock)
    return CLIENTS


def bundle(entry: str, global_name: str, out_dir: Path) -> Path:
    """`entry` (a module in tests/clients) bundled into one browser script that sets
    `window.<global_name>` to the module's exports."""
    install()
    out = out_dir / f"{global_name}.js"
    _run(
        str(CLIENTS / "node_modules" / ".bin" / "esbuild"),
        entry,
        "--bundle",
        "--format=iife",
        f"--global-name={global_name}",
        "--target=es2020",
        "--log-level=warning",
        f"--outfile={out}",
    )
    return out


def run_node(script: str, *args: str, timeout: float = 60, stdin: str | None = None) -> str:
    """Runs a Node.js script of tests/clients with `args` (and `stdin`); its stdout."""
    install()
    return _run("node", script, *args, timeout=timeout, stdin=stdin)
