"""A deadline burst through `coursekit serve`: time from a submission landing to its feedback's release.

    python -m bench.submit_bench [--count 500] [--seconds 60] [--stock-sample 3]   (make bench-submit)

A generated course and exchange in a temporary folder; `coursekit serve` runs as its own process
(c.Serve.per_hour = 0: no limit).  `--count` submissions from as many generated students land in
the exchange's inbound folder within `--seconds`, at a rate rising linearly from a quarter to
seven quarters of the average; a third right, a third wrong (Xavier's scale for He, zeros left as
stubs), a third broken (not JSON).  Each lands as nbgrader's submit writes one: the notebook,
timestamp.txt, then submission_secret.txt.  A thread looks at the exchange's feedback folder every
20 ms and notes when each expected page appears and what it holds.

Printed: p50, p95 and max latency, lost (no page) and twice (a page whose content changed after
it appeared), the service's peak memory (its process tree's RSS), the machine's load average, then
a stock pipeline on a sample (per submission: nbgrader collect, autograde, generate_feedback,
release_feedback).  bench/results/submit.png plots latency against landing time with the arrival
rate.  The last line: `submit-to-feedback: p50 X s, p95 Y s, max Z s, lost N, twice N`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.utils import notebook_hash

from coursekit.service.status import percentile
from scripts.course import ASSIGNMENT, RELEASE, ROOT
from scripts.courses import build_template, nbgrader_env
from scripts.student_work import CORRECT, solve

COURSE_ID = "weight-init"
RESULTS = ROOT / "bench" / "results"


def notebooks() -> list[bytes]:
    release = json.loads(RELEASE.read_text(encoding="utf-8"))
    wrong = {**CORRECT, "initialize_parameters_he": CORRECT["initialize_parameters_he"].replace("np.sqrt(2 /", "np.sqrt(1 /")}
    del wrong["initialize_parameters_zeros"]
    return [json.dumps(solve(copy.deepcopy(release), CORRECT)).encode(),
            json.dumps(solve(copy.deepcopy(release), wrong)).encode(),
            b'{"cells": [ this is not JSON']


def land(inbound: Path, student: str, data: bytes) -> tuple[str, float]:
    """One submission, written in nbgrader submit's order; (feedback file name, landing time)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    folder = inbound / f"{student}+{ASSIGNMENT}+{stamp}+{secrets.token_hex(8)}"
    folder.mkdir()
    (folder / f"{ASSIGNMENT}.ipynb").write_bytes(data)
    (folder / "timestamp.txt").write_text(stamp)
    secret = secrets.token_hex(64)
    (folder / "submission_secret.txt").write_text(secret)
    return notebook_hash(secret=secret, notebook_id=ASSIGNMENT) + ".html", time.time()


class Watcher(threading.Thread):
    """Notes when each page first appears in the feedback folder and the digests it held."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.seen: dict[str, float] = {}  # page -> when it first appeared
        self.digests: dict[str, set[str]] = {}  # page -> every content it was seen with
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.02):
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                continue
            for name in names:
                if name.endswith(".html") and name not in self.seen:
                    self.seen[name] = time.time()
                    self.digests[name] = {hashlib.sha256((self.folder / name).read_bytes()).hexdigest()}

    def recheck(self) -> None:
        for name in self.seen:
            self.digests[name].add(hashlib.sha256((self.folder / name).read_bytes()).hexdigest())


def tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants, in bytes."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def sample_peak(service: subprocess.Popen, halt: threading.Event) -> list[int]:
    """[the largest RSS of the service's process tree so far], sampled twice a second by a thread."""
    peak = [0]

    def sample() -> None:
        while service.poll() is None and not halt.is_set():
            peak[0] = max(peak[0], tree_rss(service.pid))
            time.sleep(0.5)
    threading.Thread(target=sample, daemon=True).start()
    return peak


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def start_service(base: Path, env: dict[str, str]) -> tuple[Path, subprocess.Popen]:
    """A generated course without an hourly limit, its exchange, and `coursekit serve` once ready."""
    course = build_template(base / "course")
    with (course / "nbgrader_config.py").open("a") as config:
        config.write("\nc.Serve.per_hour = 0\n")
    subprocess.run(["make", "-s", "-C", str(ROOT), "exchange", f"EXCHANGE={env['COURSEKIT_EXCHANGE']}"], check=True)
    run([sys.executable, "-m", "nbgrader", "release_assignment", ASSIGNMENT], course, env)
    with (base / "serve.log").open("w") as log:
        service = subprocess.Popen([sys.executable, "-m", "coursekit", "serve"], cwd=course, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    while "ready:" not in (base / "serve.log").read_text():  # plans made, workers warmed up
        if service.poll() is not None:
            sys.exit(f"coursekit serve stopped:\n{(base / 'serve.log').read_text()[-3000:]}")
        time.sleep(0.2)
    return course, service


def burst(inbound: Path, count: int, seconds: float) -> tuple[dict[str, float], float]:
    """Land `count` submissions within `seconds` at the rising rate; {page: landing time}, start."""
    kinds = notebooks()
    landed: dict[str, float] = {}
    start = time.time()
    for i in range(count):
        # rate r(t) = mean (1/4 + 3/2 t / T), so N(t) = mean (t / 4 + 3 t^2 / (4 T)): the i-th lands
        # when N(t) = i, i.e. t = T (-1/3 + sqrt(1/9 + 16 i / (3 count))) / 2 (the last at T)
        t_i = seconds * (-1 / 3 + (1 / 9 + 16 * i / (3 * count)) ** 0.5) / 2
        time.sleep(max(0.0, start + t_i - time.time()))
        page, at = land(inbound, f"s{i:04d}", kinds[i % 3])
        landed[page] = at
    return landed, start


def stock_sample(course: Path, inbound: Path, env: dict[str, str], sample: int) -> list[float]:
    """Seconds from landing to released feedback through stock nbgrader, one submission at a time
    (right and wrong ones: stock autograde exits 1 on a broken notebook)."""
    kinds, seconds = notebooks(), []
    for j in range(sample):
        _, at = land(inbound, f"stock{j}", kinds[j % 2])
        for step in ("collect", "autograde", "generate_feedback", "release_feedback"):
            options = [] if step == "collect" else [f"--student=stock{j}"]
            options += ["--force"] if step in ("autograde", "generate_feedback") else []
            run([sys.executable, "-m", "nbgrader", step, ASSIGNMENT, *options], course, env)
        seconds.append(time.time() - at)
    return seconds


def draw(points: list[tuple[float, float]], count: int, seconds: float, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter([x for x, _ in points], [y for _, y in points], s=6, label="submit-to-feedback latency")
    ax.set_xlabel("landing time (s since the burst began)")
    ax.set_ylabel("latency (s)")
    rate = ax.twinx()
    xs = [seconds * k / 100 for k in range(101)]
    rate.plot(xs, [count / seconds * (0.25 + 1.5 * x / seconds) for x in xs], color="tab:orange", label="arrival rate")
    rate.set_ylabel("arrivals per second")
    ax.set_title(title)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.88))
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "submit.png", dpi=100)
    return RESULTS / "submit.png"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stock-sample", type=int, default=3, help="submissions through the stock pipeline")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the last pages")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="coursekit-submit-bench-"))
    exchange = base / "exchange"
    env = {**nbgrader_env(), "COURSEKIT_EXCHANGE": str(exchange)}
    service = None
    try:
        course, service = start_service(base, env)
        inbound, outbound = exchange / COURSE_ID / "inbound", exchange / COURSE_ID / "feedback"
        watcher = Watcher(outbound)
        watcher.start()
        peak = sample_peak(service, watcher.halt)

        landed, start = burst(inbound, args.count, args.seconds)
        burst_s = time.time() - start
        deadline = time.time() + args.wait
        while set(landed) - set(watcher.seen) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        watcher.recheck()
        load = os.getloadavg()
        watcher.halt.set()
        service.terminate()
        service.wait(timeout=60)

        latencies = [watcher.seen[p] - at for p, at in landed.items() if p in watcher.seen]
        lost = len(set(landed) - set(watcher.seen))
        twice = sum(1 for p in landed if len(watcher.digests.get(p, ())) > 1)
        p50, p95, worst = percentile(latencies, 50), percentile(latencies, 95), max(latencies, default=0.0)
        mean = args.count / args.seconds
        print(f"{args.count} submissions landed in {burst_s:.1f} s (rate {mean / 4:.1f}/s rising to "
              f"{7 * mean / 4:.1f}/s); right/wrong/broken 1:1:1; load average {load[0]:.1f} {load[1]:.1f} "
              f"{load[2]:.1f} on {os.cpu_count()} cores")
        print(f"coursekit serve: p50 {p50:.2f} s, p95 {p95:.2f} s, max {worst:.2f} s, lost {lost}, twice {twice}; "
              f"peak memory {peak[0] / 2**20:.0f} MiB (service and workers, RSS)")
        points = sorted((at - start, watcher.seen[p] - at) for p, at in landed.items() if p in watcher.seen)
        figure = draw(points, args.count, args.seconds, f"coursekit serve, {args.count} submissions in "
                      f"{args.seconds:.0f} s: p50 {p50:.1f} s, p95 {p95:.1f} s, max {worst:.1f} s")
        print(f"figure: {figure}", flush=True)
        stock = stock_sample(course, inbound, env, args.stock_sample)
        if stock:
            print(f"stock pipeline (collect, autograde, generate_feedback, release_feedback), {len(stock)} "
                  f"submission(s) one at a time: mean {sum(stock) / len(stock):.1f} s, max {max(stock):.1f} s "
                  f"(load average now {os.getloadavg()[0]:.1f})")
        print(f"submit-to-feedback: p50 {p50:.1f} s, p95 {p95:.1f} s, max {worst:.1f} s, lost {lost}, twice {twice}")
        return 0 if lost == 0 and twice == 0 else 1
    finally:
        if service is not None and service.poll() is None:  # a failed step: stop it, never leave it running
            service.terminate()
            service.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
