"""Grade one generated class with both `nbgrader autograde` and `coursekit autograde`; print the
throughput of each, the ratio, and whether the grades agree.

    python -m bench.bench [--count 200] [--stock-sample N] [--workers N] [--keep DIR]

Both graders run end to end as a teacher would run them (start-up included), each on its own
copy of a throw-away course.  By default stock nbgrader grades the whole class too, which takes
about 6 s per notebook here (about 20 minutes for 200).  `--stock-sample N` gives stock nbgrader
only the first N students (the first 10 already hold every variant of every exercise): its
throughput is then measured on N notebooks and grades are compared on those N, while coursekit
still grades all of them and is checked against the hand-worked expected score of every one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coursekit.pipeline import default_workers
from scripts import make_class
from scripts.course import ASSIGNMENT
from scripts.courses import build_template, copy_course, expected_scores, gradebook_scores, nbgrader_env


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=nbgrader_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[1:4])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="submissions in the class (default 200)")
    parser.add_argument("--stock-sample", type=int, metavar="N",
                        help="let stock nbgrader grade only the first N students (default: all)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="coursekit worker processes (default: coursekit's own)")
    parser.add_argument("--keep", type=Path, help="build the courses here and keep them")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="coursekit-bench-"))
    try:
        template = build_template(base / "template")
        manifest = make_class.make_class(template, args.count)
        stock, fast = copy_course(template, base / "nbgrader"), copy_course(template, base / "coursekit")
        sample = sorted(manifest)[:args.stock_sample] if args.stock_sample else sorted(manifest)
        for student in set(manifest) - set(sample):
            shutil.rmtree(stock / "submitted" / student)

        print(f"class: {len(manifest)} generated submissions; nbgrader grades {len(sample)}, "
              f"coursekit grades {len(manifest)} with {args.workers} workers", flush=True)
        fast_s = timed([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT,
                        "--workers", str(args.workers)], fast)
        fast_rate = len(manifest) / fast_s
        print(f"coursekit autograde: {len(manifest)} in {fast_s:.1f} s = {fast_rate:.2f} submissions/s", flush=True)
        stock_s = timed([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--log-level=ERROR"], stock)
        stock_rate = len(sample) / stock_s
        print(f"nbgrader autograde:  {len(sample)} in {stock_s:.1f} s = {stock_rate:.3f} submissions/s")
        print(f"ratio: {fast_rate / stock_rate:.0f}x the throughput of nbgrader autograde")

        stock_scores, fast_scores = gradebook_scores(stock), gradebook_scores(fast)
        shared = {key: fast_scores.get(key) for key in stock_scores}
        same = sum(stock_scores[k] == shared[k] for k in stock_scores)
        expected = expected_scores(manifest)
        right = sum(fast_scores.get(k) == v for k, v in expected.items())
        agree = same == len(stock_scores) == len(sample) * 6 and right == len(expected)
        print(f"grades agree with nbgrader: {same}/{len(stock_scores)} per-cell scores identical "
              f"on the {len(sample)} graded by both")
        print(f"coursekit vs hand-worked expectations: {right}/{len(expected)} per-cell scores")
        print("RESULT:", "grades agree" if agree else "GRADES DIFFER")
        return 0 if agree else 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
