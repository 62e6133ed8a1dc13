"""CPU seconds from /proc, for the benches: a process's (`process_cpu`), every process's
(`processes`) and the whole machine's busy time (`machine_busy`).

Standard library only, so that `python -m bench.procstat <server pid>` (from the repository's
root) starts in milliseconds: that is the sampler bench/rescore_job.py runs beside a job, in a
process of its own, since a pass over every /proc/<pid>/stat takes 3-10 ms, which in the
bench's own process would hold up the stream's answers and add itself to the p99 measured
during jobs. It samples until a
line arrives on stdin, then prints the CPU seconds used meanwhile as JSON: by the server and
all its descendants (a job's pool is the children of the server's forkserver), by PostgreSQL,
and by the machine."""

import json
import os
import sys
import threading

TICKS = os.sysconf("SC_CLK_TCK")

# pid -> (command name, parent pid, user + system CPU seconds so far)
Process = tuple[str, int, float]


def process_cpu(pid: int) -> Process:
    """The process's name, parent and CPU seconds so far; OSError when it is gone."""
    with open(f"/proc/{pid}/stat") as f:
        head, _, tail = f.read().rpartition(")")
    fields = tail.split()
    return head.partition("(")[2], int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def processes() -> dict[int, Process]:
    """Every process running now (those gone while being read are left out)."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                found[int(name)] = process_cpu(int(name))
            except OSError:
                continue
    return found


def machine_busy() -> float:
    """The machine's busy CPU seconds since boot: all but idle and iowait."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS


def main() -> None:
    server = int(sys.argv[1])
    first: dict[int, tuple[str, float]] = {}
    last: dict[int, tuple[str, float]] = {}

    def sample() -> None:
        found = processes()
        ours, grew = {server}, True
        while grew:  # the server's descendants
            more = {pid for pid, (_, ppid, _) in found.items() if ppid in ours} - ours
            ours |= more
            grew = bool(more)
        for pid, (comm, _, seconds) in found.items():
            group = "server" if pid in ours else comm
            if group in ("server", "postgres"):
                first.setdefault(pid, (group, seconds))
                last[pid] = (group, seconds)

    stop = threading.Event()

    def until_told() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=until_told, daemon=True).start()
    machine = machine_busy()
    sample()
    while not stop.wait(0.25):  # often: a pool's processes and their backends end with the job
        sample()
    sample()
    totals = {"server": 0.0, "postgres": 0.0}
    for pid, (group, seconds) in last.items():
        totals[group] += seconds - first[pid][1]
    totals["machine"] = machine_busy() - machine
    print(json.dumps({k: round(v, 1) for k, v in totals.items()}))


if __name__ == "__main__":
    main()
