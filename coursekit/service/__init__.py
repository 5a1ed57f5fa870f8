"""The grading service for hub classes: feedback seconds after Submit (`coursekit serve`).

    serve.py    the loop: watch the exchange, collect, grade, release (its docstring has the design)
    journal.py  the durable state, so SIGKILL and a restart lose nothing
    policy.py   c.Serve.* settings: hidden tests before the due date, the hourly limit, polling
    page.py     the feedback page
    status.py   what an instructor asks: queue, graded, failures, latency (`coursekit status`)
    status_page.py  the same as a page through the hub, for the instructors' group only
"""

from .policy import Policy, Serve
from .serve import serve
from .status import status
from .status_page import serve_page

__all__ = ["Policy", "Serve", "serve", "serve_page", "status"]
