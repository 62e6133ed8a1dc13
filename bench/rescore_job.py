"""Re-scoring job after publishing a rule change, on a site with 200,000 stored leads (about
9 events each, bench/preview.py's realistic mix), and what it does to ingestion meanwhile.

Loads the leads and events into a fresh PostgreSQL database by COPY (bench/preview.py's
generator and loader), then for each `--processes` value starts `leadheat serve` (one worker,
its background loops on, `SCORING__RESCORE_PROCESSES` set), publishes a changed rule set
(`PUT /v1/rules`: a job, the site being large) and times the job until it is done, following
its progress. All along, a steady stream of small `POST /v1/batch` requests (new and returning
visitors) is sent and each answer's latency kept: the p99 without a job, while the job runs,
and their ratio. Then the same for a preview job (`POST /v1/rules/preview/jobs`) over the
same site.

`--burn N` instead measures the floor: the same stream while N processes that only compute
(no database, no locks) keep N cores busy at the job's niceness for `--burn-seconds`. What
that does to ingestion's p99 is what any job as busy as ours would do on this machine,
whatever its design. `--burn-kind memory` makes them copy a 64 MB buffer instead, to see what
a neighbour busy with memory (the shared cache, the memory bus) costs.

    LEADHEAT_SECRETS_KEY=... .venv/bin/python bench/rescore_job.py
    .venv/bin/python bench/rescore_job.py --leads 20000 --processes 2 --no-preview
    .venv/bin/python bench/rescore_job.py --reuse --processes --no-preview --burn 1 2
    .venv/bin/python bench/rescore_job.py --reuse --processes --no-preview \\
        --burn 2 --burn-kind memory --repeat 3
    .venv/bin/python bench/rescore_job.py --reuse --processes 1 2 --no-preview --repeat 3
    .venv/bin/python bench/rescore_job.py --reuse --processes 2 --repeat 3 --split-cores

`--split-cores` runs bench/split_cores.py beside the runs: the API and the PostgreSQL backends
serving it on one core, the job (its processes and backends) and PostgreSQL's own processes
on the others, as if the job had cores of its own; the disk stays shared.

Each run also prints the WAL PostgreSQL wrote during the job (MB, full-page images) and the
checkpoints that fell in it. With `--repeat`, the runs are interleaved and a pooled line per
kind compares all the runs' requests without a job with all of theirs during one.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import onboarding  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from bench.ingest import analyze, asyncpg_dsn, cpu_reference_us, start_server  # noqa: E402
from bench.preview import (  # noqa: E402
    NOW,
    draft_rule_set,
    fresh_postgres,
    generate,
    load_postgres,
    score_leads,
)
from bench.timing import percentile  # noqa: E402

Json = dict[str, Any]
DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_rescore"


async def create_site(url: str) -> tuple[uuid.UUID, str, str]:
    engine = make_engine(Settings(database_url=url))
    async with make_sessionmaker(engine)() as session:
        created = await onboarding.create_site(session, "Re-scoring bench shop")
        await session.commit()
    await engine.dispose()
    return created.site.id, created.write_key, created.secret_key


async def load(url: str, leads: int, per_lead: int) -> tuple[str, str, int]:
    await fresh_postgres(url)
    await asyncio.to_thread(upgrade, url)
    site_id, write_key, secret_key = await create_site(url)
    lead_rows, events = generate(site_id, leads, per_lead)
    score_leads(lead_rows, events)
    await load_postgres(url, lead_rows, events)
    return write_key, secret_key, len(events)


class Stream:
    """Small POST /v1/batch requests at a steady rate, each answer's latency kept with the
    moment it was sent (so that a window's p99 can be taken)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        write_key: str,
        rate: float,
        events: int,
        returning: float,
        run: int,
    ):
        self._client, self._key, self._rate, self._events = client, write_key, rate, events
        self._returning, self._run = returning, run
        self.samples: list[tuple[float, float, bool]] = []  # (sent at, seconds, new visitor)
        self.errors = 0
        self._rng = random.Random(11)
        self._n = 0

    def _batch(self) -> tuple[bool, list[Json]]:
        self._n += 1
        # New visitors and returning ones (of the streams'): after a publish, ingestion replays
        # a returning visitor's whole history before its new events (the lead is stale).
        new = self._rng.random() >= self._returning
        visitor = self._n if new else self._rng.randrange(1, self._n + 1)
        return new, [
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": f"stream-{self._run}-{visitor}",
                "messageId": f"s-{self._run}-{self._n}-{i}",
                "properties": {"product_id": f"p{i}", "category": "fridges", "price": 499},
                "context": {"page": {"url": f"https://shop.example/fridges/p{i}"}},
            }
            for i in range(self._events)
        ]

    async def _one(self) -> None:
        new, batch = self._batch()
        start = time.perf_counter()
        r = await self._client.post("/v1/batch", auth=(self._key, ""), json={"batch": batch})
        self.samples.append((start, time.perf_counter() - start, new))
        if r.status_code != 200:
            self.errors += 1

    async def run(self, stop: asyncio.Event) -> None:
        tasks: set[asyncio.Task[None]] = set()
        interval, next_at = 1 / self._rate, time.perf_counter()
        while not stop.is_set():
            task = asyncio.create_task(self._one())  # open loop: a slow answer delays no send
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.gather(*tasks)

    def window_ms(self, start: float, end: float, new: bool | None = None) -> list[float]:
        """The latencies (ms) of the requests sent in [start, end): all, or only new (True)
        or returning (False) visitors' ones."""
        return [
            s * 1000
            for at, s, is_new in self.samples
            if start <= at < end and (new is None or is_new == new)
        ]

    def p99_ms(self, start: float, end: float, new: bool | None = None) -> tuple[float, int]:
        ms = self.window_ms(start, end, new)
        return percentile(ms, 0.99), len(ms)


async def settle(url: str) -> None:
    """Put the last run's writes (its job's, the vacuum's) on disk before the next run's
    window without a job: a CHECKPOINT, then the kernel's dirty pages written out. Otherwise
    the writeback of one run falls in the next one's baseline, as stalls the job did not
    cause (seen: a baseline p99 of 43 ms against 10)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    await asyncio.to_thread(os.sync)


async def wal_counters(url: str) -> tuple[int, int, int]:
    """PostgreSQL's WAL bytes, full-page images and checkpoints so far (the whole server's):
    what a job writes, which every ingestion commit's WAL flush queues behind, and whether
    a checkpoint (after which each page's first change is logged whole) fell in its window."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT wal_bytes::bigint, wal_fpi, (SELECT checkpoints_timed + checkpoints_req"
            " FROM pg_stat_bgwriter) FROM pg_stat_wal"
        )
    finally:
        await conn.close()
    return int(row[0]), int(row[1]), int(row[2])


class CpuMeter:
    """CPU seconds used by the server's processes (its job pool included) and PostgreSQL's,
    per process from /proc, and the whole machine's busy seconds (everyone's: this machine is
    shared), between `start` and `stop`; sampled by bench/procstat.py in a process of its own."""

    def __init__(self, server_pid: int) -> None:
        self._server = server_pid
        self._sampler: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._sampler = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.procstat", str(self._server), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def stop(self) -> Json:
        if self._sampler is None:
            raise RuntimeError("the CPU meter was not started")
        out, _ = await self._sampler.communicate(b"\n")
        if self._sampler.returncode != 0:
            raise SystemExit(f"the CPU sampler exited with {self._sampler.returncode}")
        used: Json = json.loads(out)
        return used


async def follow(client: httpx.AsyncClient, secret_key: str, url: str) -> Json:
    headers = {"Authorization": f"Bearer {secret_key}"}
    while True:
        r = await client.get(url, headers=headers)
        r.raise_for_status()
        job = r.json()
        if job["status"] not in ("pending", "running"):
            return job
        await asyncio.sleep(0.25)


# What a burner does, by `--burn-kind`: "compute" stays in the core's own caches; "memory"
# copies a 64 MB buffer over and over, keeping the shared cache and the memory bus busy as a
# job's data does, at the same niceness.
BURNERS = {
    "compute": """
import os, sys, time
os.nice(int(sys.argv[2]))
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    sum(range(1000))
""",
    "memory": """
import os, sys, time
os.nice(int(sys.argv[2]))
buffer = bytearray(64 << 20)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    bytes(buffer)
""",
}


async def burn(processes: int, seconds: float, niceness: int, kind: str = "compute") -> None:
    """`processes` burners of `kind` (`BURNERS`) for `seconds`; none: the same window with
    nothing added (what two windows of the stream differ by on their own)."""
    if not processes:
        await asyncio.sleep(seconds)
        return
    burners = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", BURNERS[kind], str(seconds), str(niceness)
        )
        for _ in range(processes)
    ]
    for burner in burners:
        if await burner.wait() != 0:
            raise SystemExit(f"a burner exited with {burner.returncode}")


async def run_job(client: httpx.AsyncClient, secret_key: str, kind: str, bump: int) -> Json:
    """Start a job of `kind` ("rescore": publish; "preview") with a draft unlike the last
    runs', and follow it until it ends."""
    headers = {"Authorization": f"Bearer {secret_key}"}
    draft = draft_rule_set()
    step = bump % 20  # a change every time
    draft["thresholds"] = {"warm": 25 + step, "hot": 55 + step}
    if kind == "rescore":
        r = await client.put("/v1/rules", headers=headers, json=draft)
    else:
        r = await client.post(
            "/v1/rules/preview/jobs", headers=headers, json=draft, params={"at": NOW.isoformat()}
        )
    if r.status_code not in (200, 202):
        raise SystemExit(f"{kind} answered {r.status_code}: {r.text[:500]}")
    body = r.json()
    job_url = (body["job"] if kind == "rescore" else body)["url"]
    return await follow(client, secret_key, job_url)


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


async def measure(
    args: argparse.Namespace,
    server_pid: int,
    write_key: str,
    secret_key: str,
    kind: str,
    bump: int,
    processes: int,
) -> Json:
    """With the server up: the stream's p99 over `--baseline` seconds without a job, then
    while a job of `kind` ("rescore" or "preview") runs, or `--burn` processes compute
    ("burn"). The row's `_without_during_ms` (both windows' latencies) is for pooling."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{args.port}",
        timeout=120,
        limits=httpx.Limits(max_connections=64),
    ) as client:
        stop = asyncio.Event()
        stream = Stream(client, write_key, args.rate, args.batch_events, args.returning, bump)
        streaming = asyncio.create_task(stream.run(stop))
        await asyncio.sleep(3)  # warm: connections, caches
        base_start = time.perf_counter()
        await asyncio.sleep(args.baseline)
        base_end = time.perf_counter()
        load_before = load_average()
        cpu = CpuMeter(server_pid)
        await cpu.start()
        wal_before = await wal_counters(args.database_url)
        started_at = time.time()  # to line the samples up with PostgreSQL's and the server's logs
        start = time.perf_counter()
        if kind == "burn":
            await burn(processes, args.burn_seconds, args.niceness, args.burn_kind)
            job: Json = {"status": "done", "total": None}
        else:
            job = await run_job(client, secret_key, kind, bump)
        end = time.perf_counter()
        cpu_used = await cpu.stop()
        wal_after = await wal_counters(args.database_url)
        load_during = load_average()
        stop.set()
        await streaming
    if args.samples:  # every request: seconds from the job's start, ms, new visitor
        args.samples.write_text(
            json.dumps(
                [(round(at - start, 3), round(s * 1000, 2), n) for at, s, n in stream.samples]
            ),
        )
    base_p99, base_n = stream.p99_ms(base_start, base_end)
    job_p99, job_n = stream.p99_ms(start, end)
    return {
        "kind": kind,
        "started_at_unix": round(started_at, 2),
        "status": job["status"],
        "leads": job.get("total"),
        "seconds": round(end - start, 1),
        "p99_ms_without": round(base_p99, 1),
        "p99_ms_during": round(job_p99, 1),
        "ratio": round(job_p99 / base_p99, 2),
        # Split: a returning visitor's lead is stale after a publish (its first request
        # replays its history under the new rules); a new visitor's is not.
        "p99_ms_new_without_during": (
            round(stream.p99_ms(base_start, base_end, True)[0], 1),
            round(stream.p99_ms(start, end, True)[0], 1),
        ),
        "p99_ms_returning_without_during": (
            round(stream.p99_ms(base_start, base_end, False)[0], 1),
            round(stream.p99_ms(start, end, False)[0], 1),
        ),
        "requests": (base_n, job_n),
        "errors": stream.errors,
        "median_ms_during": round(
            statistics.median(s * 1000 for at, s, _ in stream.samples if start <= at < end), 1
        ),
        "loadavg_before_during": (load_before, load_during),
        # CPU seconds during the job: the server (with the job's processes), PostgreSQL, and
        # the whole machine (everyone's).
        "cpu_seconds": cpu_used,
        "wal_mb_fpi_checkpoints": (
            round((wal_after[0] - wal_before[0]) / 1e6),
            wal_after[1] - wal_before[1],
            wal_after[2] - wal_before[2],
        ),
        "_without_during_ms": (
            stream.window_ms(base_start, base_end),
            stream.window_ms(start, end),
        ),
    }


async def run(args: argparse.Namespace) -> None:
    url = args.database_url
    keys = Path(tempfile.gettempdir()) / f"{make_url(url).database}.keys.json"
    if args.reuse:  # the database a previous run loaded (and the stream added to)
        write_key, secret_key = json.loads(keys.read_text())
    else:
        start = time.perf_counter()
        write_key, secret_key, events = await load(url, args.leads, args.events_per_lead)
        await analyze(url)
        keys.write_text(json.dumps([write_key, secret_key]))
        print(
            f"loaded {args.leads:,} leads, {events:,} events "
            f"in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    runs = [("rescore", p) for p in args.processes]
    if not args.no_preview:
        runs.append(("preview", args.preview_processes))
    runs += [("burn", n) for n in args.burn]
    runs = [one for _ in range(args.repeat) for one in runs]  # interleaved: drift hits all
    splitter = start_split_cores(args) if args.split_cores else None
    try:
        pooled = await run_all(args, runs, write_key, secret_key)
    finally:
        if splitter is not None:
            splitter.terminate()
            splitter.wait(timeout=30)
    if args.repeat > 1:
        for (kind, processes), rows in pooled.items():
            print(pooled_summary(kind, processes, rows), flush=True)


def start_split_cores(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """bench/split_cores.py beside the runs: the API and its backends on one core, the job,
    its backends and PostgreSQL's own processes on the others."""
    database, client = str(make_url(args.database_url).database), str(os.getpid())
    return subprocess.Popen(
        [sys.executable, "-m", "bench.split_cores", "--database", database, "--client", client]
        + ["--niceness", str(args.niceness)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
    )


async def run_all(
    args: argparse.Namespace, runs: list[tuple[str, int]], write_key: str, secret_key: str
) -> dict[tuple[str, int], list[Json]]:
    url = args.database_url
    pooled: dict[tuple[str, int], list[Json]] = {}
    for bump, (kind, processes) in enumerate(runs, start=1):
        # A re-scoring rewrites every lead: the dead rows autovacuum would clean, cleaned
        # (bench.ingest.analyze: only where the server's autovacuum is off).
        await analyze(url)
        await settle(url)
        os.environ["LEADHEAT_SCORING__RESCORE_PROCESSES"] = str(processes)
        os.environ["LEADHEAT_SCORING__PREVIEW_PROCESSES"] = str(processes)
        os.environ["LEADHEAT_SCORING__RESCORE_BATCH_LEADS"] = str(args.batch_leads)
        if args.pause is not None:
            os.environ["LEADHEAT_SCORING__RESCORE_PAUSE_SECONDS"] = str(args.pause)
        os.environ["LEADHEAT_SCORING__JOB_PROCESS_NICENESS"] = str(args.niceness)
        server = await asyncio.to_thread(start_server, url, args.port, 1, True)
        reference = cpu_reference_us()  # this machine's speed now: quote it with the figures
        try:
            row = await measure(
                args, server.pid, write_key, secret_key, kind, bump + args.bump, processes
            )
        finally:
            server.terminate()
            server.wait(timeout=60)
        row.update(processes=processes, batch_leads=args.batch_leads, niceness=args.niceness)
        row["pause"] = (
            Settings().scoring.rescore_pause_seconds if args.pause is None else args.pause
        )
        row["cpu_reference_us"] = (reference, cpu_reference_us())
        row["split_cores"] = args.split_cores
        pooled.setdefault((kind, processes), []).append(row)
        print({k: v for k, v in row.items() if not k.startswith("_")}, flush=True)
    return pooled


def pooled_summary(kind: str, processes: int, rows: list[Json]) -> Json:
    """Several runs of one kind as one: the p99 (and p95) of all their requests without a
    job against all of theirs during one. A window's p99 is its few slowest requests, which
    one stall (a burst of the disk's writeback, a neighbour on the machine) decides; pooled windows
    have more of them."""
    without = [ms for row in rows for ms in row["_without_during_ms"][0]]
    during = [ms for row in rows for ms in row["_without_during_ms"][1]]
    p99 = percentile(without, 0.99), percentile(during, 0.99)
    p95 = percentile(without, 0.95), percentile(during, 0.95)
    return {
        "kind": kind,
        "processes": processes,
        "runs": len(rows),
        "seconds": sorted(row["seconds"] for row in rows),
        "ratios": sorted(row["ratio"] for row in rows),
        "pooled_p99_ms_without_during": (round(p99[0], 1), round(p99[1], 1)),
        "pooled_p99_ratio": round(p99[1] / p99[0], 2),
        "pooled_p95_ratio": round(p95[1] / p95[0], 2),
        "requests": (len(without), len(during)),
        "checkpoints_during": sum(row["wal_mb_fpi_checkpoints"][2] for row in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument(
        "--split-cores",
        action="store_true",
        help="the API and its backends on one core, the job on the others (bench/split_cores.py)",
    )
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--events-per-lead", type=int, default=9)
    parser.add_argument("--processes", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--preview-processes", type=int, default=2)
    parser.add_argument("--no-preview", action="store_true")
    parser.add_argument(
        "--burn", type=int, nargs="*", default=[], help="computing processes instead of a job"
    )
    parser.add_argument("--burn-seconds", type=float, default=30.0)
    parser.add_argument(
        "--burn-kind", choices=sorted(BURNERS), default="compute", help="what a burner does"
    )
    parser.add_argument(
        "--samples", type=Path, help="write every request's latency here (the last run's)"
    )
    parser.add_argument("--reuse", action="store_true", help="the database of the last run")
    parser.add_argument("--batch-leads", type=int, default=200)
    parser.add_argument(
        "--pause", type=float, help="seconds between batches (default: the server's)"
    )
    parser.add_argument("--niceness", type=int, default=19)
    parser.add_argument("--rate", type=float, default=20, help="ingestion requests per second")
    parser.add_argument("--batch-events", type=int, default=5, help="events per request")
    parser.add_argument("--returning", type=float, default=0.5, help="share of old visitors")
    parser.add_argument("--baseline", type=float, default=20, help="seconds without a job")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--bump", type=int, default=0, help="reused: unlike the last drafts")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each; more than one: a pooled summary"
    )
    args = parser.parse_args()
    # PostgreSQL needs a key for webhook secrets; a fresh database can take a new one.
    os.environ.setdefault("LEADHEAT_SECRETS_KEY", Fernet.generate_key().decode())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
