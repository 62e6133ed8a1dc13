"""The tracker build: the committed file is well formed and small enough to serve, and it is
what the source builds to.

The committed build (app/static/tracker.js, what Leadheat serves) is checked everywhere. The
rebuild-and-compare half needs Node.js and npm: without them it is skipped with the reason,
and with CI=true it fails instead. (The browser tests run the committed build in Chromium.)
"""

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = ROOT / "tracker"
COMMITTED = ROOT / "app" / "static" / "tracker.js"
GZIP_LIMIT = 5120
VERSION = json.loads((TRACKER / "package.json").read_text())["version"]


def _need_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    reason = (
        f"{' and '.join(missing)} not installed: cannot rebuild the tracker to compare it"
        " with the committed build (which is checked without them)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is an error)")
    pytest.skip(reason)


def _run(*cmd: str) -> str:
    done = subprocess.run(
        cmd, cwd=TRACKER, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def committed() -> bytes:
    assert COMMITTED.exists(), "app/static/tracker.js is missing: run `make tracker`"
    return COMMITTED.read_bytes()


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    _need_node()
    if not (TRACKER / "node_modules" / "esbuild").is_dir():
        _run("npm", "ci", "--no-audit", "--no-fund")
    out = tmp_path_factory.mktemp("tracker") / "tracker.js"
    _run("npm", "run", "build", "--", "--out", str(out))
    return out.read_bytes()


# The committed build, with or without Node.js.


def test_committed_tracker_is_under_5_kb_gzipped(committed: bytes) -> None:
    size = len(gzip.compress(committed, compresslevel=9))
    assert size < GZIP_LIMIT, f"tracker is {size} bytes gzipped, limit {GZIP_LIMIT}"


def test_committed_tracker_is_a_minified_build_of_the_package_version(committed: bytes) -> None:
    text = committed.decode("utf-8")  # esbuild's charset=utf8
    banner, *code = text.splitlines()
    assert banner == f"/*! leadheat.js {VERSION} */"
    assert len(code) <= 2, "not minified"  # esbuild: the code on one line
    assert code[0].startswith("((")  # one wrapped script...
    assert code[0].rstrip().endswith(");")  # ...called at once
    assert f'"{VERSION}"' in text
    assert "__LH_VERSION__" not in text  # the build's define was applied


# The rebuild-and-compare half: Node.js and npm.


def test_committed_tracker_matches_a_fresh_build(committed: bytes, fresh_build: bytes) -> None:
    assert committed == fresh_build, (
        "app/static/tracker.js is stale: run `make tracker` and commit the result"
    )


def test_gzipped_fresh_build_is_under_5_kb(fresh_build: bytes) -> None:
    size = len(gzip.compress(fresh_build, compresslevel=9))
    assert size < GZIP_LIMIT, f"tracker is {size} bytes gzipped, limit {GZIP_LIMIT}"


def test_build_carries_the_package_version(fresh_build: bytes) -> None:
    assert f'"{VERSION}"'.encode() in fresh_build
    assert b"__LH_VERSION__" not in fresh_build
