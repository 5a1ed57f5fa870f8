"""Measure what one sandbox run costs for a tiny submission (not a test: prints numbers).

    python -m bench.sandbox_bench [--runs 200] [--workers 2]

Each run executes the setup imports plus the release's three initializers, solved as in
scripts/student_work.py, and makes 30 small calls, as the grader does for one submission.  The
zygotes preload what the course's nbgrader_config.py says (c.CourseKit.sandbox_preload).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time

from coursekit.read import load_course
from coursekit.sandbox import Call, Sandbox
from scripts.course import RELEASE, ROOT
from scripts.student_work import CORRECT, solve

PRELOAD = load_course(ROOT).settings.sandbox_preload  # what the course's zygotes import once
SOLVED = solve(json.loads(RELEASE.read_text(encoding="utf-8")), CORRECT)
CODE = [
    "import numpy as np\nimport matplotlib.pyplot as plt\n"
    "from init_utils import sigmoid, relu, forward_propagation, compute_loss\n"
    "from public_tests import initialize_parameters_he_test\n",
    *(cell["source"] for cell in SOLVED["cells"]
      if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") in CORRECT),
]
CALLS = [Call(name, (dims,))
         for name in ("initialize_parameters_zeros", "initialize_parameters_random",
                      "initialize_parameters_he")
         for dims in ([2, 4, 1], [3, 2, 1], [5, 3, 2, 1], [2, 10, 5, 1], [4, 4], [1, 1],
                      [3, 5, 1], [6, 2, 2, 1], [2, 3], [7, 1])]


def cpu_split(boxes: list[Sandbox]) -> tuple[float, float, float]:
    """CPU seconds so far of (this process, the zygotes themselves, their reaped children)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    zygote = children = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for box in boxes:
        with open(f"/proc/{box.zygote_pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        utime, stime, cutime, cstime = (int(x) / tick for x in fields[11:15])
        zygote += utime + stime
        children += cutime + cstime
    return own.ru_utime + own.ru_stime, zygote, children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    boxes = [Sandbox(preload=PRELOAD) for _ in range(args.workers)]
    for box in boxes:  # start the zygotes and warm up outside the timed part
        result = box.run(CODE, CALLS, workdir_files=RELEASE.parent)
        assert result.reason is None and all(c.status == "ok" for c in result.calls), result
    per_worker = args.runs // args.workers

    def work(box: Sandbox) -> None:
        for _ in range(per_worker):
            box.run(CODE, CALLS, workdir_files=RELEASE.parent)

    cpu0 = cpu_split(boxes)
    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(box,)) for box in boxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    grader, zygotes, children = (b - a for a, b in zip(cpu0, cpu_split(boxes)))
    for box in boxes:
        box.close()
    runs = per_worker * args.workers
    ms = 1e3 / runs
    print(f"{runs} runs, {args.workers} workers: {runs / wall:.0f} runs/s, "
          f"{wall * ms:.2f} ms wall per run; CPU per run: {(grader + zygotes + children) * ms:.2f} ms"
          f" = grader {grader * ms:.2f} + zygote {zygotes * ms:.2f} + child {children * ms:.2f}")


if __name__ == "__main__":
    main()
