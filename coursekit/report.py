"""Stage 6, report: a progress bar on a terminal, or one JSON object per submission.

What the operator should know (a submission the grader could not grade) goes to the
``coursekit`` logger.  The bar is one line redrawn with a carriage return (`_progress`, a few
lines); the log handler clears it before each line it writes (cli._LogHandler), and the next
update draws it again below.  rich's progress display (rich 15 is in the development venv, as
import-linter's dependency) was weighed and not taken: it would become a dependency of every
install for one line of output, and while its live display runs it takes sys.stderr's place, so
the log handler would have to write through rich's console rather than to the stream it was given:
more code than the bar it would replace.

Student ids, notebook names and reasons are student text: what reaches the terminal passes
through `coursekit.printable` (the log handler and the bar; escape sequences shown, never acted on);
JSON lines escape them anyway.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from .read import Submission
from .score import GradedSubmission

log = logging.getLogger(__name__)


def as_json(result: GradedSubmission) -> dict:
    sub = result.submission
    return {
        "status": "graded",
        "student": sub.student,
        "assignment": sub.assignment,
        "notebook": sub.notebook,
        "score": result.score,
        "max_score": result.max_score,
        "cells": {gid: {"score": result.scores[gid], "max_score": result.max_scores[gid],
                        "message": result.messages[gid], "mode": result.modes.get(gid, "replay")}
                  for gid in result.scores},
        "reason": result.reason,
    }


class Reporter:
    def __init__(self, total: int, json_lines: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> None:
        self.total, self.json_lines, self.out, self.err = total, json_lines, out, err
        self.bar = err.isatty()
        self.start = time.monotonic()
        self.graded = self.skipped = self.failed = 0

    def _emit(self, obj: dict) -> None:
        if self.json_lines:
            self.out.write(json.dumps(obj) + "\n")
            self.out.flush()
        self._progress()

    def graded_one(self, result: GradedSubmission) -> None:
        self.graded += 1
        self._emit(as_json(result))

    def skipped_one(self, submission: Submission, why: str) -> None:
        self.skipped += 1
        self._emit({"status": "skipped", "student": submission.student, "assignment": submission.assignment,
                    "notebook": submission.notebook, "reason": why})

    def failed_one(self, submission: Submission, why: str) -> None:
        """The grader itself failed on this submission: nothing was recorded, a re-run retries it."""
        self.failed += 1
        log.error("could not grade %s/%s: %s", submission.student, submission.notebook, why)
        self._emit({"status": "error", "student": submission.student, "assignment": submission.assignment,
                    "notebook": submission.notebook, "reason": why})

    @property
    def rate(self) -> float:
        return self.graded / max(time.monotonic() - self.start, 1e-9)

    def _progress(self) -> None:
        if not self.bar:
            return
        done = self.graded + self.skipped + self.failed
        width = 30
        filled = width * done // max(self.total, 1)
        self.err.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                       f"{self.rate:5.1f} submissions/s")
        self.err.flush()

    def close(self) -> None:
        if self.bar:
            self.err.write("\n")
        self.err.write(f"coursekit: graded {self.graded}, skipped {self.skipped}, failed {self.failed} "
                       f"in {time.monotonic() - self.start:.1f} s ({self.rate:.1f} submissions/s)\n")
        self.err.flush()
