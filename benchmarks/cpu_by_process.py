"""CPU seconds a command costs, by kind of process, counting every process started while it
runs (Ray's actors and daemons leave the command's process tree, so `time` misses them).

    python benchmarks/cpu_by_process.py [--every 0.5] -- COMMAND...

On two cores the test suite is CPU-bound (both cores busy throughout): its wall time is its
CPU work over two, and this says where that work goes. A process is sampled until it exits,
so up to `--every` seconds of a short-lived one's last CPU are missed."""

from __future__ import annotations

import argparse
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import psutil

# The first of these in a command line names its kind; a Ray worker names itself "ray::<Class>".
KINDS = ("dashboard", "raylet", "gcs_server", "log_monitor", "runtime_env", "ray.util.client", "prefect",
         "moto", "pytest", "chromium", "dvc")


def kind(cmdline: list[str]) -> str:
    if not cmdline:
        return "?"
    line = " ".join(cmdline)
    if match := re.search(r"ray::[\w.]+", line):
        return match.group(0)
    if match := re.search(r"-m (mmbert[\w.]*|flows[\w.]*)", line):
        return match.group(1)
    # anything else by its program's name and first arguments
    return next((name for name in KINDS if name in line), " ".join([Path(cmdline[0]).name, *cmdline[1:]])[:50])


def sample(seen: dict[tuple[int, float], tuple[float, str]], before: set[int]) -> None:
    for proc in psutil.process_iter(["pid", "create_time", "cmdline", "cpu_times"]):
        info = proc.info
        if info["pid"] in before or info["cpu_times"] is None:
            continue
        key, times = (info["pid"], info["create_time"]), info["cpu_times"]
        # an exited process not yet reaped (a zombie) keeps its CPU times but not its command line
        name = kind(info["cmdline"]) if info["cmdline"] else seen.get(key, (0.0, "?"))[1]
        seen[key] = (times.user + times.system, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    before = set(psutil.pids())
    seen: dict[tuple[int, float], tuple[float, str]] = {}
    started = time.perf_counter()
    proc = subprocess.Popen(command)
    while proc.poll() is None:
        sample(seen, before)
        time.sleep(args.every)
    wall = time.perf_counter() - started
    totals = Counter()
    for cpu, name in seen.values():
        totals[name] += cpu
    print(f"\n{sum(totals.values()):.0f} s CPU in {len(seen)} processes, {wall:.0f} s wall "
          f"(exit status {proc.returncode})")
    for name, cpu in totals.most_common(args.top):
        print(f"{cpu:9.1f}  {name}")
    raise SystemExit(proc.returncode)


if __name__ == "__main__":
    main()
