"""What the sandbox's zygote imports once for a course besides c.CourseKit.sandbox_preload: the
installed libraries the master notebook imports.

The zygote forks every run, and a child pays each import the zygote did not do.  A course that does
not list its libraries in ``sandbox_preload`` would pay them in every run; Matplotlib's is the
worst, as a run's fresh MPLCONFIGDIR makes it rebuild its font cache (about 6 s a submission on a
plotting assignment here, 1.2 s with it preloaded).  Only libraries from site-packages are taken
(not the course's own files, whose import would run as root, nor the standard library), and only
up to the first whose import starts a thread: a fork keeps only the calling thread.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from typing import Callable

from . import extract

__all__ = ["installed_imports"]


def installed_imports(plan: extract.AssignmentPlan, python: Callable[[str], str]) -> tuple[str, ...]:
    """Modules the master's code cells import (`import a.b`, `from a.b import c`) that are
    installed libraries, up to the first whose import starts a thread (checked in a fresh
    interpreter)."""
    found: list[str] = []
    for cell in plan.cells:
        source = cell.solution or cell.source
        if cell.cell_type != "code" or not source:
            continue
        try:
            tree = ast.parse(python(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
    folders = _library_folders()
    return _single_threaded(tuple(name for name in dict.fromkeys(found) if _installed(name.partition(".")[0], folders)))


def _library_folders() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(dict.fromkeys(os.path.join(os.path.realpath(paths[k]), "") for k in ("purelib", "platlib")))


# Imports `names` in order in a fresh interpreter and prints those imported before any import left
# a second thread running: the zygote forks every run, and a fork keeps only the calling thread.
_THREAD_PROBE = """
import importlib, json, os, sys
ok = []
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        continue
    if len(os.listdir("/proc/self/task")) > 1:
        break
    ok.append(name)
print(json.dumps(ok))
"""


@functools.lru_cache(maxsize=16)
def _single_threaded(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` up to the first whose import starts a thread (those the zygote may import)."""
    if not names:
        return ()
    env = {"PATH": os.environ.get("PATH", ""), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/")}
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _THREAD_PROBE, *names], env=env, cwd="/",
                              capture_output=True, text=True, timeout=120)
        return tuple(json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return ()


@functools.lru_cache(maxsize=256)
def _installed(top: str, folders: tuple[str, ...]) -> bool:
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    origin = spec.origin if spec and spec.origin else (list(spec.submodule_search_locations or [""])[0] if spec else "")
    return bool(origin) and os.path.realpath(origin).startswith(folders)
