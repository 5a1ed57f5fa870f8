"""Grade generated classes with both `nbgrader autograde` and `coursekit autograde`; print the
throughput of each, the ratio, and whether the grades agree.

    python -m bench.bench [--count 200] [--stock-sample N] [--workers N] [--keep DIR] [--only lesson|general]

Two tables.  The first is this course (the lesson's notebook runs three 15,000-iteration trainings,
so stock nbgrader spends about 6 s a notebook).  The second is other kinds of course, the
assignments of tests/general_course/: `textstats` (light: string and statistics functions in two
notebooks), `gallery` (plot-heavy: demonstration cells draw a dozen figures, tests inspect axes)
and `weather` (a data file: the functions read a CSV beside the notebook).  Each gets a class of
`--count` students built by cycling through `coursekit check`'s variants of its master (the
solution, the release, each solution cell stubbed, other styles, wrong return values), with the
release's data files beside each notebook as `nbgrader submit` leaves them.

Both graders run end to end as a teacher would run them (start-up included), each on its own
copy of a throw-away course.  By default stock nbgrader grades the whole class too, which takes
about 6 s per notebook here (about 20 minutes for 200).  `--stock-sample N` gives stock nbgrader
only the first N students (the first 10 already hold every variant of every exercise): its
throughput is then measured on N notebooks and grades are compared on those N, while coursekit
still grades all of them and is checked against the hand-worked expected score of every one (in
the second table, against nbgrader on the sample only).  Stock nbgrader runs as one process, as
`nbgrader autograde` does; coursekit with its default workers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from coursekit import check
from coursekit.extract import notebooks_of
from coursekit.pipeline import default_workers
from coursekit.read import load_course
from scripts import make_class
from scripts.course import ASSIGNMENT, ROOT
from scripts.courses import build_template, copy_course, expected_scores, gradebook_scores, nbgrader_env


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=nbgrader_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[1:4])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def lesson_table(args: argparse.Namespace, base: Path) -> bool:
    """This course: a class of generated submissions, both graders, the ratio; whether grades agree."""
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
    return agree


GENERAL = ROOT / "tests" / "general_course"
GENERAL_ASSIGNMENTS = {  # assignment -> what kind of course it stands for
    "textstats": "light (functions on strings and numbers, 2 notebooks)",
    "gallery": "plot-heavy (12 figures in demo cells, tests read axes)",
    "weather": "data file (functions read a CSV beside the notebook)",
}


def general_class(folder: Path, assignment: str, count: int) -> tuple[Path, list[str]]:
    """A course copy of tests/general_course/ with `assignment` generated and `count` students,
    student i submitting `coursekit check`'s variant i (cycling); returns it and the students."""
    template = check.generate(check.course_copy(GENERAL, folder / "template"), assignment)
    course = load_course(template)
    names = notebooks_of(course, assignment)
    release, master = ({n: json.loads((where / f"{n}.ipynb").read_text(encoding="utf-8")) for n in names}
                       for where in (course.release_dir(assignment), course.source_dir(assignment)))
    found = check.variants(release, master, check.delimiters(template))
    students = {f"s{i:03d}": found[i % len(found)] for i in range(count)}
    check.write_students(template, assignment, students)
    return template, sorted(students)


def general_row(args: argparse.Namespace, base: Path, assignment: str) -> dict:
    """Both graders on one assignment's class: seconds, rates, ratio, replay/sandbox grades, agreement."""
    template, students = general_class(base / assignment, assignment, args.count)
    stock, fast = copy_course(template, base / assignment / "nbgrader"), copy_course(template, base / assignment / "coursekit")
    sample = students[:args.stock_sample] if args.stock_sample else students
    for student in set(students) - set(sample):
        shutil.rmtree(stock / "submitted" / student)
    start = time.perf_counter()
    ck = subprocess.run([sys.executable, "-m", "coursekit", "autograde", assignment, "--json",
                         "--workers", str(args.workers)], cwd=fast, env=nbgrader_env(), capture_output=True, text=True)
    fast_s = time.perf_counter() - start
    row = {"assignment": assignment, "kind": GENERAL_ASSIGNMENTS[assignment], "count": len(students)}
    if ck.returncode == 2:  # refused at planning time: nothing to time against nbgrader
        return {**row, "refused": " ".join(ck.stderr.split())[:300]}
    if ck.returncode:
        sys.exit(f"coursekit autograde {assignment} failed:\n{ck.stderr[-3000:]}")
    modes = Counter(cell["mode"] for line in ck.stdout.splitlines() if line.startswith("{")
                    for cell in json.loads(line).get("cells", {}).values())
    start = time.perf_counter()
    check.stock_autograde(stock, assignment, jobs=1)
    stock_s = time.perf_counter() - start
    theirs, ours = check.grades(stock, assignment), check.grades(fast, assignment)
    same = sum(ours.get(key) == grade for key, grade in theirs.items())
    return {**row, "fast_s": fast_s, "sample": len(sample), "stock_s": stock_s,
            "ratio": (len(students) / fast_s) / (len(sample) / stock_s), "replay": modes["replay"],
            "sandbox": modes["sandbox"], "same": same, "compared": len(theirs)}


def general_table(args: argparse.Namespace, base: Path) -> bool:
    """The second table: other kinds of course (tests/general_course/)."""
    print(f"\nother kinds of course (tests/general_course/): {args.count} generated submissions each, coursekit "
          f"with {args.workers} workers; stock nbgrader (one process) on "
          f"{f'the first {args.stock_sample}' if args.stock_sample else 'all of them'}", flush=True)
    rows = []
    for assignment in GENERAL_ASSIGNMENTS:
        rows.append(general_row(args, base, assignment))
        r = rows[-1]
        print(f"  {assignment}: " + (f"coursekit REFUSES it: {r['refused']}" if "refused" in r else
                                     f"coursekit {r['count']} in {r['fast_s']:.1f} s, nbgrader {r['sample']} in "
                                     f"{r['stock_s']:.1f} s"), flush=True)
    print(f"\n{'assignment':<11}{'kind':<56}{'coursekit /s':>13}{'nbgrader /s':>12}{'ratio':>8}"
          f"{'test grades replay/sandbox':>28}{'cells agree':>13}")
    for r in rows:
        if "refused" in r:
            print(f"{r['assignment']:<11}{r['kind']:<56}{'refused at planning time (above)':>41}")
            continue
        print(f"{r['assignment']:<11}{r['kind']:<56}{r['count'] / r['fast_s']:>13.2f}"
              f"{r['sample'] / r['stock_s']:>12.3f}{r['ratio']:>7.1f}x{r['replay']:>19}/{r['sandbox']:<8}"
              f"{r['same']:>6}/{r['compared']:<6}")
    return all(r.get("same") == r.get("compared", 0) > 0 for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="submissions in each class (default 200)")
    parser.add_argument("--stock-sample", type=int, metavar="N",
                        help="let stock nbgrader grade only the first N students of each class (default: all)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="coursekit worker processes (default: coursekit's own)")
    parser.add_argument("--only", choices=("lesson", "general"), help="run one of the two tables")
    parser.add_argument("--keep", type=Path, help="build the courses here and keep them")
    args = parser.parse_args()

    base = args.keep or Path(tempfile.mkdtemp(prefix="coursekit-bench-"))
    try:
        agree = True
        if args.only != "general":
            agree = lesson_table(args, base / "lesson") and agree
        if args.only != "lesson":
            agree = general_table(args, base / "general") and agree
        print("RESULT:", "grades agree" if agree else "GRADES DIFFER")
        return 0 if agree else 1
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
