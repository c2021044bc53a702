"""Shared by the benchmark scripts: each measurement runs in its own child process, which
prints one JSON line; its peak RSS is read from the kernel for that process alone. Also the
sandbox they all push to, and the wall time and peak RSS of a whole process tree."""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far: how much of the machine a side took, beside its wall time."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB.

    Linux's ``VmHWM`` belongs to the memory map, which ``exec`` replaces, so a child reports
    its own peak. ``ru_maxrss`` survives ``exec``: a child of a large parent would report the
    parent's peak, hence it is only the fallback where ``/proc`` is absent.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def reset_peak_rss() -> bool:
    """Start a new high-water mark at the current RSS (Linux >= 4.0: ``clear_refs`` 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def emit(result: dict[str, Any]) -> None:
    """A child's answer: one JSON line on stdout, always the last."""
    print(json.dumps(result), flush=True)


def run_child(script: Path | str, *args: Any) -> dict[str, Any]:
    """Run ``python script args...`` in a fresh process and return the JSON it emitted.
    Its stderr (progress, logs) passes through."""
    completed = subprocess.run([sys.executable, str(script), *map(str, args)], check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> dict[str, Any]:
    """Median and min–max of repeated runs (the machines are shared: the spread is part of the figure)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sandbox(tmp: Path) -> Iterator[str]:
    """The sandbox in its own process, Batch's rate limit lifted through its admin endpoint
    (``POST /_sandbox/ratelimit``), so that every side of a comparison meets the same server."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "activation_pipeline.sandbox", "--port", str(port), "--state", str(tmp / "sb.sqlite")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        # the real limit (1,000 items/s) would make every side take 1,000 s per million items
        requests.post(f"{url}/_sandbox/ratelimit", json={"enabled": False}, timeout=10).raise_for_status()
        yield url
    finally:
        process.terminate()
        process.wait()


def catalog_items(url: str) -> dict[str, int]:
    """What the sandbox's Batch project holds: catalog name -> item count."""
    return {c["name"]: c["items"] for c in requests.get(f"{url}/_sandbox/batch/catalogs", timeout=120).json()["catalogs"]}


def items_received(url: str) -> int:
    """Items the sandbox's Batch endpoint has received in edit requests since it started (its own count)."""
    return int(requests.get(f"{url}/_sandbox/stats", timeout=60).json()["batch"]["items_received"])


@dataclass
class ProcessRun:
    seconds: float  # wall time from start to exit, interpreter start and imports included
    rss_mb: float  # peak resident memory of the process and its children
    stdout: str


def run_measured(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, interval: float = 0.02) -> ProcessRun:
    """Run ``command`` to its end; its wall time and peak RSS, children included.

    psutil samples the process tree's summed RSS every ``interval`` seconds; the kernel's
    ``ru_maxrss`` of the waited-for child catches a peak between two samples."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(process.pid)
            while not done.is_set():
                total = 0
                for member in [root, *root.children(recursive=True)]:
                    try:
                        total += member.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                done.wait(interval)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, command, stdout)
    kernel_peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux
    return ProcessRun(seconds, max(peak[0], kernel_peak) / 2**20, stdout)


def reset_sandbox(url: str) -> None:
    """Empty every emulator and the stats (the rate limit stays lifted), so each measured run meets an empty platform."""
    requests.post(f"{url}/_sandbox/reset", timeout=300).raise_for_status()


def timed_threads(target: Any, arguments: list[tuple[Any, ...]]) -> float:
    """Seconds for ``target`` to run once per argument tuple, each in its own thread; the first error is raised after the join."""
    failures: list[BaseException] = []

    def run(*args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # noqa: BLE001 - raised below, after every thread ended
            failures.append(exc)

    threads = [threading.Thread(target=run, args=args) for args in arguments]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return seconds
