"""Metrics and logs of real `leadheat serve` and `leadheat worker` processes: a scrape sums
every server worker's counts; a request's id is in its request line, in its group commit's
line and in the worker's line for the delivery attempt it caused; every log line is JSON."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from tests.factories import basic_auth, bearer
from tests.helpers import free_port, wait_until
from tests.ops.helpers import scrape, value


@contextmanager
def leadheat(
    *args: str, env: dict[str, str], log: Path, health: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A `leadheat` subprocess, its stderr to `log`; stopped (SIGTERM) at the end."""
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        if health:

            def serving() -> bool:
                """the process answers"""
                assert proc.poll() is None, log.read_text()
                try:
                    return httpx.get(health, timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(serving, timeout=30)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _serve_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        "LEADHEAT_DATABASE_URL": database_url,
        "LEADHEAT_PORT": str(port),
        "LEADHEAT_CREATE_DEMO_SITE": "false",
        **extra,
    }


def _track(url: str, site: Any, message_id: str, **headers: str) -> httpx.Response:
    # A new connection each time (no client kept): the kernel spreads them over the workers.
    return httpx.post(
        f"{url}/v1/track",
        auth=basic_auth(site.write_key),
        json={"event": "Product Viewed", "anonymousId": message_id, "messageId": message_id},
        headers=headers,
        timeout=10,
    )


def test_two_server_workers_count_into_one_scrape(database_url, db_engine, site, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _serve_env(database_url, port, LEADHEAT_RUN_BACKGROUND="false", TMPDIR=str(tmp_path))
    with leadheat(
        "serve", "--no-migrate", "--workers", "2", env=env, log=tmp_path / "serve.log",
        health=f"{url}/health/live",
    ):  # fmt: skip
        sent = 40
        for i in range(sent):
            assert _track(url, site, f"m{i}").status_code == 200
        # The directory the CLI made for the workers' metric files (TMPDIR is tmp_path).
        [directory] = tmp_path.glob("leadheat-metrics-*")
        per_worker = []
        for counters in sorted(directory.glob("counter_*.db")):
            merged = MultiProcessCollector.merge([str(counters)], accumulate=True)
            accepted = [m for m in merged if m.name == "leadheat_events_accepted"]
            per_worker.append(sum(s.value for m in accepted for s in m.samples))
        assert len(per_worker) == 2
        assert all(count > 0 for count in per_worker), per_worker  # both workers stored some
        assert sum(per_worker) == sent
        # Whichever worker answers the scrape, it shows every worker's counts.
        for _ in range(6):
            samples = scrape(url)
            assert value(samples, "leadheat_events_accepted_total") == sent
            assert (
                value(samples, "leadheat_http_requests_total",
                      method="POST", route="/v1/track", status="200")
                == sent
            )  # fmt: skip
            assert value(samples, "leadheat_ingest_group_commit_seconds_count") >= 1
        # A worker that dies is replaced; what it counted still counts (a counter must not
        # go down), and its replacement counts on.
        pids = {int(path.stem.split("_")[1]) for path in directory.glob("counter_*.db")}
        os.kill(min(pids), signal.SIGKILL)

        def replaced() -> set[int]:
            """a new worker serves"""
            now = {int(path.stem.split("_")[1]) for path in directory.glob("counter_*.db")}
            return now - pids

        wait_until(replaced, timeout=30)
        for i in range(sent, sent + 10):
            assert _track(url, site, f"m{i}").status_code == 200
        assert value(scrape(url), "leadheat_events_accepted_total") == sent + 10
    assert not directory.exists()  # removed when the server stopped


def _json_lines(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in parsed:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    return parsed


def test_a_request_id_is_followed_to_its_group_commit_and_its_delivery(
    database_url, db_engine, site, receiver, tmp_path
):
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    # The receiver is on 127.0.0.1: both processes allow private addresses.
    common = {"LEADHEAT_LOG_FORMAT": "json", "LEADHEAT_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true"}
    serve_env = _serve_env(
        database_url, port, LEADHEAT_RUN_BACKGROUND="false", LEADHEAT_LOG_LEVEL="debug",
        LEADHEAT_ACCESS_LOG="true", **common,
    )  # fmt: skip
    worker_env = {
        "LEADHEAT_DATABASE_URL": database_url,
        "LEADHEAT_WEBHOOKS__POLL_SECONDS": "0.2",
        **common,
    }
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    request_id = "checkout-7f3a"
    with (
        leadheat("serve", "--no-migrate", env=serve_env, log=serve_log,
                 health=f"{url}/health/live"),
        leadheat("worker", "--metrics-port", str(metrics_port), env=worker_env, log=worker_log,
                 health=f"http://127.0.0.1:{metrics_port}/metrics"),
    ):  # fmt: skip
        r = httpx.post(
            f"{url}/v1/webhooks",
            headers=bearer(site.secret_key),
            json={"url": receiver.url, "event_types": ["lead.hot"]},
        )
        assert r.status_code == 201, r.text
        endpoint_id = r.json()["id"]
        assert r.headers["x-request-id"]  # one made for a request that sent none
        r = httpx.post(
            f"{url}/v1/track",
            auth=basic_auth(site.write_key),
            json={"event": "Contact Requested", "anonymousId": "v",
                  "properties": {"phone": "+7 900"}},
            headers={"X-Request-ID": request_id},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == request_id

        def delivered() -> bool:
            """the worker delivered, counted and logged the attempt"""
            samples = scrape(f"http://127.0.0.1:{metrics_port}")
            logged = "lead.hot" in worker_log.read_text()
            return value(samples, "leadheat_webhook_attempts_total", outcome="success") == 1 and (
                logged
            )

        wait_until(delivered)
    assert len(receiver.received) == 1

    served = _json_lines(serve_log)
    [request_line] = [
        line for line in served if line["logger"] == "app.access" and line["route"] == "/v1/track"
    ]
    assert request_line["request_id"] == request_id
    assert request_line["status"] == 200
    assert request_line["duration_ms"] > 0
    [group_line] = [line for line in served if line["message"].startswith("group committed")]
    assert group_line["request_ids"] == [request_id]
    assert group_line["events"] == 1

    worked = _json_lines(worker_log)
    [attempt] = [line for line in worked if line.get("event_type") == "lead.hot"]
    assert attempt["request_id"] == request_id
    assert attempt["endpoint_id"] == endpoint_id
    assert attempt["message_id"].startswith("msg_")
    assert attempt["status_code"] == 200
    assert attempt["outcome"] == "success"
    assert attempt["attempt"] == 1
    assert attempt["duration_ms"] > 0
    assert attempt["next_attempt_at"] is None
    assert attempt["level"] == "INFO"


SERVER_LIKE = """
import os

import app.cli  # noqa: F401 (what a server worker's main module imports, metrics included)
from app.scoring.job_ranges import process_pool

if __name__ == "__main__":
    with process_pool(2, 0) as pool:
        children = {f.result() for f in [pool.submit(os.getpid) for _ in range(4)]}
    print(os.getpid(), *children)
"""


def test_job_processes_leave_no_metric_files(tmp_path, repo_root):
    """A job process imports the server's modules again (spawned: its parent's main module),
    which makes metric files in the inherited directory; it removes its own."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    script = tmp_path / "server_like.py"
    script.write_text(SERVER_LIKE)
    done = subprocess.run(
        [sys.executable, str(script)],
        env={
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(directory),
            "PYTHONPATH": str(repo_root),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parent, *children = (int(pid) for pid in done.stdout.split())
    assert children
    owners = {int(path.stem.split("_")[1]) for path in directory.glob("*.db")}
    assert owners == {parent}
