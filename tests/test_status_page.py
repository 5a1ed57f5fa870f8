"""The grading service's page for instructors (coursekit.service.status_page), without a hub.

The page through a real hub, the instructors' group reaching it and a student refused, is in
tests/test_hub_class.py; here: what the page shows and that a student's text stays text.
"""

from __future__ import annotations

import subprocess
import sys

from coursekit.service.status import Status
from coursekit.service.status_page import render
from tests.helpers import nbgrader_env

HOSTILE = "ckh-cy+<img src=x onerror=alert(1)>+2026-12-07 17:00:00.000000 UTC+x\x1b[2J"


def a_status(failures: list[tuple[str, str]]) -> Status:
    latency = {"p50": 0.4, "p95": 1.25, "max": 3.0, "count": 7.0}
    return Status(counts={"waiting": 2, "graded": 7, "failed": len(failures)}, pages=9, latency=latency,
                  latency_all=latency, failures=failures)


def test_the_page_shows_the_counts_and_the_latency():
    page = render("weight-init", "teacher", a_status([])).decode()
    for cell in ('id="waiting">2<', 'id="graded">7<', 'id="held">0<', 'id="failed">0<', 'id="pages">9<'):
        assert cell in page, cell
    assert "0.4 s" in page and "1.2 s" in page and "3.0 s" in page
    assert '<p id="failures">None.</p>' in page


def test_a_failure_reason_is_shown_as_text_never_as_markup():
    page = render("weight-init", "teacher", a_status([(HOSTILE, "no assignment '<script>alert(1)</script>'")])).decode()
    assert "<img" not in page and "<script>" not in page and "\x1b" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "\\x1b[2J" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_course_the_service_never_served_gets_a_sentence_not_an_error():
    page = render("weight-init", "<b>teacher</b>", "no journal at /x: `coursekit serve` has not run").decode()
    assert 'id="problem">no journal at /x: `coursekit serve` has not run<' in page
    assert "&lt;b&gt;teacher&lt;/b&gt;" in page


def test_outside_a_hub_the_page_says_how_to_start_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "coursekit", "status", "--hub-service", "--course-dir", str(tmp_path)],
                          env={k: v for k, v in nbgrader_env().items() if not k.startswith("JUPYTERHUB_")},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "runs as a JupyterHub service" in done.stderr and "jupyterhub_config.py" in done.stderr, done.stderr
