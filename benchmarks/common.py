"""Shared by the benchmark scripts: each measurement runs in its own child process, which
prints one JSON line; its peak RSS is read from the kernel for that process alone."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any


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
