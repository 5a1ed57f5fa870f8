"""coursekit: a fast, sandboxed drop-in for ``nbgrader autograde``.

The Python API, for scripts and notebooks that grade without the command line::

    from coursekit import autograde
    summary = autograde(assignment="initialization", course_dir="path/to/course")
    print(summary.graded, summary.failed)

    from coursekit import push_grades          # the grades into the LMS (README, "Grades in your LMS")
    push_grades(course_dir="path/to/course", assignment="initialization")

Names are imported on first use (PEP 562), so ``import coursekit`` and ``coursekit --version``
stay fast; the grader's modules load NumPy and nbgrader only when something is graded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "autograde": "pipeline",
    "Summary": "pipeline",
    "GradedSubmission": "score",
    "CourseError": "read",
    "PlanError": "extract",
    "SandboxError": "sandbox",
    "CourseKit": "config",
    "export_grades": "export",
    "push_grades": "lms",
    "Settings": "config",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # the same names, for type checkers and editors (the "as" marks a re-export)
    from .config import CourseKit as CourseKit
    from .config import Settings as Settings
    from .export import export_grades as export_grades
    from .extract import PlanError as PlanError
    from .lms import push_grades as push_grades
    from .pipeline import Summary as Summary
    from .pipeline import autograde as autograde
    from .read import CourseError as CourseError
    from .sandbox import SandboxError as SandboxError
    from .score import GradedSubmission as GradedSubmission


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'coursekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
