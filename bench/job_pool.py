"""What a job's process pool costs before it replays anything: from making the pool to every
process having answered a trivial call that needs the job's code, for processes spawned
fresh (each imports the app) and forked from the running fork server (app.scoring.job_ranges,
started beforehand as the worker starts it).

    .venv/bin/python bench/job_pool.py --processes 2 --runs 5
"""

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.scoring import job_ranges  # noqa: E402


def _ready(_: int) -> int:
    import app.scoring.preview_jobs  # noqa: F401  (what a range's process runs)

    time.sleep(0.05)  # held, so that each call lands in a process of its own
    return multiprocessing.current_process().pid or 0


def start(pool: ProcessPoolExecutor, processes: int) -> float:
    began = time.perf_counter()
    pids = set(pool.map(_ready, range(processes)))
    assert len(pids) == processes, pids
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    job_ranges.start_forkserver(["app.worker"])
    results: dict[str, list[float]] = {"spawn": [], "forkserver": []}
    for _ in range(args.runs):
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            args.processes, mp_context=spawn, initializer=job_ranges._start_job_process,
            initargs=(19,),
        ) as pool:  # fmt: skip
            results["spawn"].append(start(pool, args.processes))
        with job_ranges.process_pool(args.processes, 19) as pool:
            results["forkserver"].append(start(pool, args.processes))
    print(
        json.dumps(
            {k: {"median_ms": round(statistics.median(v), 1), "runs": [round(x) for x in v]}
             for k, v in results.items()},
            indent=2,
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
