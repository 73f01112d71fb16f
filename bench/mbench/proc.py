"""Processes and measurements of them: run, stop by pid, CPU, memory, TCP connections."""

import os
import pathlib
import shlex
import signal
import statistics
import subprocess
import sys
import time

def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def die(message):
    print(f"bench: error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(argv, timeout=60, check=True, **kwargs):
    result = subprocess.run(argv, timeout=timeout, capture_output=True, text=True, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_pid(pid, grace=2.0):
    """TERM, a bounded wait, then KILL; by pid only."""
    if not alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.02)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def pids_of_uid(uid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def pids_of_exe(name):
    """This namespace's processes whose executable is `name` (mosh-clients this script started:
    the benchmark runs no others)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.path.basename(os.readlink(f"/proc/{entry}/exe")) == name:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def cpu_ns(pid):
    """CPU time of every thread of a process, in nanoseconds (schedstat: finer than clock ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid, field="VmRSS"):
    """A memory figure from /proc/PID/status: VmRSS, or RssAnon (the process's own pages, not
    the program's and libraries' file pages that every process using them shares)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_by_mapping(pid):
    """Resident KiB per mapped file (or [heap], [stack], anonymous), largest first, from smaps."""
    totals = {}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields[0].endswith(":") or "-" in fields[0]:
                name = fields[5] if len(fields) > 5 else "[anonymous]"
            elif fields[0] == "Rss:":
                totals[name] = totals.get(name, 0) + int(fields[1])
    return sorted(totals.items(), key=lambda item: -item[1])


def tcp_connections(pid):
    """How many established TCP connections the process holds (seen in its own network namespace)."""
    inodes = set()
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in list(f)[1:]:
                fields = line.split()
                count += fields[3] == "01" and fields[9] in inodes
    return count


def summary(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples)}


