"""Emulates, on one machine, a job whose database work runs on cores that ingestion does not
use: what the README's scaling advice asks for (PostgreSQL with more cores than the job has
processes, the worker on cores of its own). bench/rescore_job.py runs it beside its runs with
`--split-cores`.

Every 0.2 s it pins (`sched_setaffinity`, every thread):
- to the first CPU, the API: the server (`app.cli`) at niceness 0, the PostgreSQL backends of
  `--database` at niceness 0 (ingestion's and the dashboard's), and the postmaster that forks
  them;
- to the other CPUs, the job: processes at the job's niceness (its pool and the backends it
  lowered, see app.scoring.job_ranges), the fork server, PostgreSQL's own processes
  (checkpointer, WAL writer, background writer, autovacuum), and the bench's client
  (`--client`, with its CPU sampler).

What stays shared is the disk, the WAL and the buffer pool. On SIGTERM (or stdin closing) every
process it moved is given all the CPUs back. Linux only; standard library only.

    python -m bench.split_cores --database leadheat_bench_rescore --client <pid>
"""

import argparse
import os
import signal
import sys
import threading

from bench.procstat import processes

PERIOD = 0.2


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pin(pid: int, cpus: set[int]) -> bool:
    """Every thread of `pid` on `cpus`; False if it is gone."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in threads:
        try:
            if os.sched_getaffinity(int(tid)) != cpus:
                os.sched_setaffinity(int(tid), cpus)
        except OSError:
            continue
    return True


def side(pid: int, parent: int, database: str, client: int, niceness: int) -> str | None:
    """Which side a process goes to: "api", "job", or None (left alone)."""
    command = _command(pid)
    if not command:
        return None
    try:
        nice = os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:
        return None
    if command.startswith("postgres: "):
        serves_api = f" {database} " in command and nice == 0 and "autovacuum" not in command
        return "api" if serves_api else "job"
    if "/bin/postgres " in command:  # the postmaster
        return "api"
    if "python" in command and "app.cli" in command and nice == 0:
        return "api"  # the server (the bench's child)
    if pid == client or parent == client:  # the bench's stream, its CPU sampler, this process
        return "job"
    if "python" in command and (nice == niceness or "multiprocessing.forkserver" in command):
        return "job"
    return None


def run(database: str, client: int, niceness: int, stop: threading.Event) -> set[int]:
    everything = os.sched_getaffinity(0)
    api, job = {min(everything)}, everything - {min(everything)}
    if not job:
        sys.exit("--split-cores needs 2 CPUs or more")
    moved: set[int] = set()
    while not stop.is_set():
        for pid, (_, parent, _) in processes().items():
            where = side(pid, parent, database, client, niceness)
            if where is not None and _pin(pid, api if where == "api" else job):
                moved.add(pid)
        stop.wait(PERIOD)
    for pid in moved:
        _pin(pid, everything)
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True, help="the bench database's name")
    parser.add_argument("--client", type=int, required=True, help="the bench's pid")
    parser.add_argument("--niceness", type=int, default=19, help="the job's niceness")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    run(args.database, args.client, args.niceness, stop)


if __name__ == "__main__":
    main()
