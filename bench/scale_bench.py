"""Class scale: grade generated classes of several sizes with `coursekit autograde` on SQLite and on a
PostgreSQL server, next to a stock `nbgrader autograde` sample measured in the same run.

    python -m bench.scale_bench [--sizes 200 2000 10000] [--gradebooks sqlite postgresql]
                                [--stock-sample 10] [--workers N] [--out bench/results]

Per class size and gradebook, coursekit grades a fresh copy of the course end to end, as a teacher
would run it (start-up included).  Printed and written to OUT/scale.md, OUT/scale.json and a plot
OUT/scale.png (throughput against class size):
  * submissions/s end to end, and steady (from the commit that holds the 10% mark to the last
    one: the per-submission cost without start-up);
  * the ratio of each to stock `nbgrader autograde`, which grades the first N students of the
    same class in the same run (a sample: it takes about 8 s a notebook);
  * the grader process's peak memory (resident set, sampled every 0.2 s);
  * whether every per-cell score equals the one worked out by hand for its variant, and whether
    coursekit's scores equal stock nbgrader's on the sample.
The PostgreSQL server (scripts/pg_server.py) is started and stopped by this command; like the
tests' server it runs with fsync off.  The class is generated once at the largest size
(scripts/make_class.py); smaller classes are its first students, hard-linked, not copied.  The
graded courses are deleted at the end, not between classes (see main()).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from coursekit.pipeline import default_workers
from scripts import make_class
from scripts.course import ASSIGNMENT, ROOT
from scripts.courses import build_template, expected_scores, generate_assignment, gradebook_scores, nbgrader_env
from scripts.pg_server import PostgresServer
from scripts.rates import steady_rate

COURSE_FILES = ("nbgrader_config.py", "source", "release", "gradebook.db")


@dataclass
class Run:
    gradebook: str
    size: int
    seconds: float  # end to end
    steady_rate: float  # submissions/s from the commit holding the 10% mark to the last (steady_rate())
    peak_mb: float  # the grader process's peak resident memory
    grades_right: int  # per-cell scores equal to the hand-worked ones
    cells: int

    @property
    def rate(self) -> float:
        return self.size / self.seconds


class PeakMemory(threading.Thread):
    """Samples a process's resident memory every 0.2 s until it ends; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process, self.peak = psutil.Process(pid), 0

    def run(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:  # ended
                return
            time.sleep(0.2)


def class_course(template: Path, students: list[str], dest: Path) -> Path:
    """A course with the template's files (fresh gradebook) and these of its students, hard-linked."""
    dest.mkdir(parents=True)
    for name in COURSE_FILES:
        src = template / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    for student in students:
        src, out = template / "submitted" / student / ASSIGNMENT, dest / "submitted" / student / ASSIGNMENT
        out.mkdir(parents=True)
        for file in src.iterdir():
            os.link(file, out / file.name)
    return dest


def grade_with_coursekit(course: Path, env: dict[str, str], workers: int) -> tuple[float, float, float]:
    """(seconds end to end, steady submissions/s, peak MB) of `coursekit autograde --json`."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "coursekit", "autograde", ASSIGNMENT, "--json",
                             "--workers", str(workers)], cwd=course, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None  # both PIPE
    memory = PeakMemory(proc.pid)
    memory.start()
    stamps = [time.perf_counter() for line in proc.stdout if json.loads(line)["status"] == "graded"]
    error = proc.stderr.read()
    if proc.wait():
        sys.exit(f"coursekit autograde failed in {course}:\n{error[-3000:]}")
    seconds = time.perf_counter() - start
    memory.join()
    return seconds, steady_rate(stamps), memory.peak / 2**20


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 10000])
    parser.add_argument("--gradebooks", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    parser.add_argument("--stock-sample", type=int, default=10, metavar="N",
                        help="students stock nbgrader grades (default 10, about 5 s each)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="coursekit worker processes (default: coursekit's own)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    base = Path(tempfile.mkdtemp(prefix="coursekit-scale-"))
    try:
        template = build_template(base / "template")
        manifest = make_class.make_class(template, max(args.sizes))
        order = list(manifest)  # generation order: the first students cover every variant
        print(f"class generated: {len(order)} submissions; {args.workers} coursekit workers; "
              f"{os.cpu_count()} cores", flush=True)

        sample = order[:args.stock_sample]
        stock = class_course(template, sample, base / "stock")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--log-level=ERROR"],
                       cwd=stock, env=nbgrader_env(), check=True, capture_output=True)
        stock_rate = len(sample) / (time.perf_counter() - start)
        stock_scores = gradebook_scores(stock)
        print(f"nbgrader autograde: {len(sample)} submissions, {stock_rate:.3f} submissions/s", flush=True)

        runs: list[Run] = []
        agree = True
        server = PostgresServer().start() if "postgresql" in args.gradebooks else None
        try:
            for gradebook in args.gradebooks:
                for size in args.sizes:
                    course = class_course(template, order[:size], base / f"{gradebook}-{size}")
                    env = nbgrader_env()
                    if server is not None and gradebook == "postgresql":
                        env["COURSEKIT_GRADEBOOK"] = server.create_database(f"class{size}")
                        generate_assignment(course, "--force", "--log-level=WARN", env=env)
                    url = env.get("COURSEKIT_GRADEBOOK")
                    seconds, steady, peak = grade_with_coursekit(course, env, args.workers)
                    scores = gradebook_scores(course, url)
                    expected = expected_scores({s: manifest[s] for s in order[:size]})
                    right = sum(scores.get(k) == v for k, v in expected.items())
                    agree &= all(scores.get(k) == v for k, v in stock_scores.items())
                    runs.append(Run(gradebook, size, seconds, steady, peak, right, len(expected)))
                    print(f"coursekit, {gradebook}, {size}: {runs[-1].rate:.1f} submissions/s end to end, "
                          f"{steady:.1f} steady, peak {peak:.0f} MB, grades {right}/{len(expected)}", flush=True)
                    # The graded course stays until the end (a few GB in all).  Deleting its tens of
                    # thousands of files here put a tenth of the next class's CPU into creating files
                    # (perf: ext4's find_inode_bit/recently_deleted; ext4 without a journal, as on
                    # the test machine, passes over inodes freed in the last minutes).
        finally:
            if server is not None:
                server.stop()
        report(runs, stock_rate, len(sample), agree, args)
        ok = agree and all(r.grades_right == r.cells for r in runs)
        print("RESULT:", "grades agree" if ok else "GRADES DIFFER")
        return 0 if ok else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(runs: list[Run], stock_rate: float, sample: int, agree: bool, args: argparse.Namespace) -> None:
    lines = [f"stock `nbgrader autograde`: {stock_rate:.3f} submissions/s ({sample} students, same run); "
             f"coursekit scores equal nbgrader's on them: {'yes' if agree else 'NO'}", "",
             "| gradebook | submissions | end to end | ratio | steady | ratio | grader peak memory | grades as expected |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.gradebook} | {r.size:,} | {r.rate:.1f}/s ({r.seconds:.0f} s) | {r.rate / stock_rate:.0f}x "
                     f"| {r.steady_rate:.1f}/s | {r.steady_rate / stock_rate:.0f}x | {r.peak_mb:.0f} MB "
                     f"| {r.grades_right}/{r.cells} |")
    table = "\n".join(lines)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(table + "\n")
    (args.out / "scale.json").write_text(json.dumps({"stock_rate": stock_rate, "stock_sample": sample,
                                                     "workers": args.workers, "cores": os.cpu_count(),
                                                     "runs": [asdict(r) | {"rate": r.rate} for r in runs]},
                                                    indent=1) + "\n")
    plot(runs, stock_rate, args.out / "scale.png")
    print(f"\nwritten: {args.out / 'scale.md'}, {args.out / 'scale.json'}, {args.out / 'scale.png'}")


def plot(runs: list[Run], stock_rate: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for gradebook, color in (("sqlite", "tab:blue"), ("postgresql", "tab:orange")):
        mine = sorted((r for r in runs if r.gradebook == gradebook), key=lambda r: r.size)
        if mine:
            sizes = [r.size for r in mine]
            ax.plot(sizes, [r.rate for r in mine], "o-", color=color, label=f"{gradebook}, end to end")
            ax.plot(sizes, [r.steady_rate for r in mine], "s--", color=color, label=f"{gradebook}, steady")
    ax.axhline(500 * stock_rate, color="gray", linestyle=":", label=f"500x nbgrader ({500 * stock_rate:.0f}/s)")
    ax.set_xscale("log")
    ax.set_xticks(sorted({r.size for r in runs}), [f"{r:,}" for r in sorted({r.size for r in runs})])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("submissions in the class")
    ax.set_ylabel("submissions per second")
    ax.set_title(f"coursekit autograde, {os.cpu_count()} cores "
                 f"(stock nbgrader: {stock_rate:.2f}/s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
