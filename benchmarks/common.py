"""Helpers shared by the benchmark scripts: data location, skipping, machine, tables.

The real data is read from ``../shared/data`` relative to the repo root (a sibling
checkout of the shared folder). Without it, each benchmark prints ``skipped: ...``
and exits 0, so ``run_all.sh`` still succeeds on a machine without the data.
"""

import os
import platform
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(REPO_ROOT, "..", "shared", "data"))
CHR20 = os.path.join(SHARED_DATA, "grch37_chr20")
OUT_DIR = os.path.join(REPO_ROOT, "benchmarks", "out")  # git-ignored


def skip(reason: str):
    print(f"skipped: {reason}")
    sys.exit(0)


def require(*paths, hint="the benchmarks read the real data from repo_root/../shared/data"):
    """Skip (exit 0) unless every path exists."""
    for path in paths:
        if not os.path.exists(path):
            skip(f"{path} not found ({hint})")


def machine() -> str:
    """'N cores, CPU model, M GiB RAM' for the results table."""
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {model}, {mem:.1f} GiB RAM"


def timed(fn, *args, **kwargs):
    """``(seconds, result)`` of one call, wall clock."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def table(header, rows):
    """Print a small aligned table; numbers are given already formatted."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(line([str(h) for h in header]))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))
