"""The feedback page a student fetches: one HTML file per graded notebook, made with Jinja2.

What a student may see is decided by `coursekit.feedback.shown_tests` (hidden tests masked before
the due date); this module only lays it out.  Every piece of text comes from the student's
notebook or from a grader's message about it, so the template escapes everything (autoescape),
and the page has no script.  The page is rendered here rather than by nbgrader's
generate_feedback (nbconvert): a page costs about a millisecond instead of a Jupyter export, and
what it shows is exactly the list of results below plus the student's own answers.

The score line reads "(Score: X / Y)" like nbgrader's feedback, so the JupyterLab Assignments tab
and a person read it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import jinja2

from ..feedback import GRADED_LATER, ShownTest

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Feedback: {{ assignment }} / {{ notebook }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; } td, th { border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; vertical-align: top; }
.pass { color: #176b2c; } .fail { color: #a31515; } .later { color: #666; font-style: italic; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
.note { background: #fff8e0; border-left: 4px solid #e0b000; padding: .5rem .8rem; }
</style></head><body>
<h1>{{ assignment }}: {{ notebook }}</h1>
<p>Student: <b>{{ student }}</b>. Submitted at {{ submitted }}. Graded at {{ graded }}.</p>
{% if held %}
<p class="note">{{ held }}</p>
{% else %}
<h2>(Score: {{ "%.1f"|format(score) }} / {{ "%.1f"|format(max_score) }})</h2>
{% if later_points %}<p class="note">This score counts the public tests only. {{ "%g"|format(later_points) }}
more points come from hidden tests, which are {{ later }}{% if due %} ({{ due }}){% endif %}: their results
appear in the feedback you fetch after it.</p>{% endif %}
{% if final %}<p>This is the final feedback on your last submission: every test, hidden ones included.</p>{% endif %}
{% for note in notes %}<p class="note">{{ note }}</p>{% endfor %}
<table><tr><th>Test</th><th>Points</th><th>Result</th></tr>
{% for t in tests %}<tr>
<td>{{ t.grade_id }}{% if t.hidden %} (hidden){% endif %}</td>
{% if t.score is none %}<td>{{ "%g"|format(t.max_score) }} possible</td><td class="later">{{ later }}</td>
{% else %}<td>{{ "%g"|format(t.score) }} / {{ "%g"|format(t.max_score) }}</td>
<td class="{{ 'pass' if t.score >= t.max_score else 'fail' }}">{{ 'passed' if t.score >= t.max_score else 'failed' }}
{% if t.message %}<pre>{{ t.message }}</pre>{% endif %}</td>{% endif %}
</tr>{% endfor %}</table>
{% endif %}
{% if answers %}<h2>Your answers, as graded</h2>
{% for grade_id, source in answers %}<h3>{{ grade_id }}</h3><pre>{{ source }}</pre>{% endfor %}{% endif %}
</body></html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_PAGE = _ENV.from_string(_TEMPLATE)


@dataclass(frozen=True)
class PageData:
    student: str
    assignment: str
    notebook: str
    submitted: str  # the submission's timestamp, as the exchange wrote it
    graded_at: float  # Unix time
    tests: list[ShownTest]
    answers: list[tuple[str, str]]  # (grade id, the student's source) of the answer cells
    final: bool = False
    due: str | None = None  # the due date, in words
    held: str | None = None  # over the limit: the note, and no results
    notes: tuple[str, ...] = ()


def render(data: PageData) -> bytes:
    shown = [t for t in data.tests if t.score is not None]
    graded = datetime.fromtimestamp(data.graded_at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return _PAGE.render(
        student=data.student, assignment=data.assignment, notebook=data.notebook, submitted=data.submitted,
        graded=graded, held=data.held, score=sum(t.score or 0.0 for t in shown),
        max_score=sum(t.max_score for t in shown),
        later_points=sum(t.max_score for t in data.tests if t.score is None), later=GRADED_LATER,
        due=data.due, final=data.final, notes=data.notes, tests=data.tests, answers=data.answers,
    ).encode("utf-8")
