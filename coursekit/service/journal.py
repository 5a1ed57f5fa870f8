"""The grading service's durable state: one SQLite file (WAL, synchronous=FULL) beside the gradebook.

Every step the service takes is written here before the next one starts, so that SIGKILL at any
moment, then a restart, loses nothing and releases nothing twice with different contents:

    submission  one row per folder the exchange's inbound holds (student+assignment+time+random),
                from the moment it is complete: waiting -> graded | held | failed
    feedback    one row per (submission, notebook, phase): the page's bytes, stored *before* it is
                copied to the exchange; `released_at` is set once the copy is in place.  A restart
                copies the stored bytes of an unreleased row again, never a page made anew, and
                the primary key keeps a second, different page for the same phase out.
    final       one row per (assignment, due date) whose regrade at the due date is finished.

Phases: "early" (before the due date, hidden tests masked), "held" (over the hourly limit: a note,
no grade), "final" (at or after the due date: every result).  A submission thus gets at most one
page per phase; the final page replaces the early one at the same exchange path, as nbgrader's own
release_feedback would after a regrade.

Why SQLite rather than tables in the gradebook: the gradebook may be PostgreSQL on another host,
and the state must commit in a few milliseconds per step (one local fsync) during a deadline burst.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from sqlalchemy.engine import make_url

PHASES = ("early", "held", "final")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submission (
    name TEXT PRIMARY KEY,          -- the inbound folder's name
    student TEXT NOT NULL,
    assignment TEXT NOT NULL,
    timestamp TEXT NOT NULL,        -- as in the folder name (and timestamp.txt)
    seen_at REAL NOT NULL,          -- when the service first found it complete (Unix time)
    state TEXT NOT NULL,            -- waiting, graded, held, failed
    reason TEXT,                    -- for failed and held: why, in words
    score REAL, max_score REAL,
    graded_at REAL
);
CREATE INDEX IF NOT EXISTS submission_student ON submission (assignment, student);
CREATE TABLE IF NOT EXISTS feedback (
    name TEXT NOT NULL,
    notebook TEXT NOT NULL,
    phase TEXT NOT NULL,
    target TEXT NOT NULL,           -- file name in the exchange's feedback folder
    html BLOB NOT NULL,
    made_at REAL NOT NULL,
    released_at REAL,
    PRIMARY KEY (name, notebook, phase)
);
CREATE TABLE IF NOT EXISTS final (
    assignment TEXT NOT NULL,
    duedate TEXT NOT NULL,
    done_at REAL NOT NULL,
    PRIMARY KEY (assignment, duedate)
);
"""


def default_path(course_root: Path, db_url: str) -> Path:
    """Beside a SQLite gradebook, else in the course folder."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).with_name(Path(url.database).name + ".serve.sqlite")
    return course_root / "serve.sqlite"


@dataclass(frozen=True)
class Row:
    name: str
    student: str
    assignment: str
    timestamp: str
    seen_at: float
    state: str
    reason: str | None
    score: float | None
    max_score: float | None
    graded_at: float | None


@dataclass(frozen=True)
class Page:
    name: str
    notebook: str
    phase: str
    target: str
    html: bytes
    released_at: float | None


class Journal:
    """The state file.  One connection, used by one thread; every method commits before it returns."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode, NORMAL makes a commit survive the death of this process (SIGKILL, OOM)
            # without an fsync per commit; a power cut may lose the last commits, which the next
            # start redoes (waiting submissions are graded, unreleased pages released).
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _rows(self, where: str, *args: object) -> list[Row]:
        return [Row(*r) for r in self.db.execute(
            "SELECT name, student, assignment, timestamp, seen_at, state, reason, score, max_score, graded_at "
            f"FROM submission {where}", args)]

    def known(self) -> set[str]:
        return {name for (name,) in self.db.execute("SELECT name FROM submission")}

    def add(self, rows: list[tuple[str, str, str, str]], seen_at: float) -> None:
        """New complete submissions (name, student, assignment, timestamp), all waiting."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO submission (name, student, assignment, timestamp, seen_at, "
                                "state) VALUES (?, ?, ?, ?, ?, 'waiting')", [(*r, seen_at) for r in rows])

    def get(self, name: str) -> Row:
        return self._rows("WHERE name = ?", name)[0]

    def waiting(self) -> list[Row]:
        return self._rows("WHERE state = 'waiting' ORDER BY timestamp, name")

    def held(self, assignment: str) -> list[Row]:
        return self._rows("WHERE state = 'held' AND assignment = ?", assignment)

    def settled(self, assignment: str) -> list[Row]:
        """Submissions not failed, oldest first (the last of each student is theirs at the due date)."""
        return self._rows("WHERE assignment = ? AND state IN ('graded', 'held', 'waiting') ORDER BY timestamp, name",
                          assignment)

    def graded_since(self, assignment: str, student: str, since: float) -> list[float]:
        """When each of the student's submissions graded since `since` was graded, oldest first."""
        return [t for (t,) in self.db.execute(
            "SELECT graded_at FROM submission WHERE assignment = ? AND student = ? AND state = 'graded' "
            "AND graded_at >= ? ORDER BY graded_at", (assignment, student, since))]

    def mark(self, name: str, state: str, reason: str | None = None, score: float | None = None,
             max_score: float | None = None, graded_at: float | None = None) -> None:
        with self.db:
            self.db.execute("UPDATE submission SET state = ?, reason = ?, score = ?, max_score = ?, "
                            "graded_at = COALESCE(?, graded_at) WHERE name = ?",
                            (state, reason, score, max_score, graded_at, name))

    def store_pages(self, pages: list[tuple[str, str, str, str, bytes]]) -> list[Page]:
        """Keep each page (name, notebook, phase, target, html) unless one is stored for its phase
        already, in one transaction; the stored ones either way."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO feedback (name, notebook, phase, target, html, made_at) "
                                f"VALUES (?, ?, ?, ?, ?, {time.time()!r})", pages)
        return [self.page(name, notebook, phase) for name, notebook, phase, _, _ in pages]

    def page(self, name: str, notebook: str, phase: str) -> Page:
        (row,) = self.db.execute("SELECT name, notebook, phase, target, html, released_at FROM feedback "
                                 "WHERE name = ? AND notebook = ? AND phase = ?", (name, notebook, phase))
        return Page(*row)

    def released_notebooks(self, name: str, phase: str) -> set[str]:
        """The notebooks of the submission whose page for `phase` is in the exchange."""
        return {nb for (nb,) in self.db.execute(
            "SELECT notebook FROM feedback WHERE name = ? AND phase = ? AND released_at IS NOT NULL", (name, phase))}

    def unreleased(self) -> Iterator[Page]:
        for row in self.db.execute("SELECT name, notebook, phase, target, html, released_at FROM feedback "
                                   "WHERE released_at IS NULL ORDER BY made_at").fetchall():
            yield Page(*row)

    def released(self, pages: list[Page], at: float,
                 graded: Sequence[tuple[str, float, float]] = ()) -> None:
        """The pages are in the exchange, and the submissions (name, score, max score) graded, unless one
        of their notebooks failed: one transaction."""
        with self.db:
            self.db.executemany("UPDATE feedback SET released_at = ? WHERE name = ? AND notebook = ? AND phase = ?",
                                [(at, p.name, p.notebook, p.phase) for p in pages])
            self.db.executemany("UPDATE submission SET state = 'graded', reason = NULL, score = ?, max_score = ?, "
                                "graded_at = ? WHERE name = ? AND state != 'failed'", [(s, m, at, n) for n, s, m in graded])

    def final_done(self, assignment: str, duedate: str) -> bool:
        return self.db.execute("SELECT 1 FROM final WHERE assignment = ? AND duedate = ?",
                               (assignment, duedate)).fetchone() is not None

    def finish_final(self, assignment: str, duedate: str) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO final VALUES (?, ?, ?)", (assignment, duedate, time.time()))

    # --- for `coursekit status` -----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM submission GROUP BY state").fetchall())

    def failures(self, limit: int = 20) -> list[Row]:
        return self._rows("WHERE state = 'failed' ORDER BY seen_at DESC LIMIT ?", limit)

    def latencies(self, since: float = 0.0) -> list[float]:
        """Seconds from a submission being seen to its first page being released."""
        return [d for (d,) in self.db.execute(
            "SELECT min(f.released_at) - s.seen_at FROM feedback f JOIN submission s ON s.name = f.name "
            "WHERE f.released_at IS NOT NULL AND s.seen_at >= ? GROUP BY f.name", (since,))]

    def pages_released(self) -> int:
        return self.db.execute("SELECT count(*) FROM feedback WHERE released_at IS NOT NULL").fetchone()[0]
