"""The tracker build: small enough to serve, and the committed file is what the source builds to."""

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


def _need_node() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed: cannot build the tracker"
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
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    _need_node()
    if not (TRACKER / "node_modules" / "esbuild").is_dir():
        _run("npm", "ci", "--no-audit", "--no-fund")
    out = tmp_path_factory.mktemp("tracker") / "tracker.js"
    _run("npm", "run", "build", "--", "--out", str(out))
    return out.read_bytes()


def test_gzipped_tracker_is_under_5_kb(fresh_build: bytes) -> None:
    size = len(gzip.compress(fresh_build, compresslevel=9))
    assert size < GZIP_LIMIT, f"tracker is {size} bytes gzipped, limit {GZIP_LIMIT}"


def test_committed_tracker_matches_a_fresh_build(fresh_build: bytes) -> None:
    assert COMMITTED.exists(), "app/static/tracker.js is missing: run `npm run build` in tracker/"
    assert COMMITTED.read_bytes() == fresh_build, (
        "app/static/tracker.js is stale: run `npm run build` in tracker/ and commit the result"
    )


def test_build_carries_the_package_version(fresh_build: bytes) -> None:
    version = json.loads((TRACKER / "package.json").read_text())["version"]
    assert f'"{version}"'.encode() in fresh_build
    assert b"__LH_VERSION__" not in fresh_build
