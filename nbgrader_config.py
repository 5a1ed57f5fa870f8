"""nbgrader configuration of the weight-initialization course.

Paths are relative to this folder, so the course works wherever it is cloned.
Environment variables let a JupyterHub admin point the exchange and the gradebook
elsewhere without editing this file:

    COURSEKIT_EXCHANGE   exchange root (default: /srv/nbgrader/exchange)
    COURSEKIT_GRADEBOOK  SQLAlchemy URL of the gradebook
                         (default: sqlite:///<this folder>/gradebook.db)
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  (injected by traitlets when nbgrader loads this file)

HERE = Path(__file__).resolve().parent

c.CourseDirectory.course_id = "weight-init"
c.CourseDirectory.root = str(HERE)
c.CourseDirectory.db_url = os.environ.get("COURSEKIT_GRADEBOOK", f"sqlite:///{HERE / 'gradebook.db'}")
c.Exchange.root = os.environ.get("COURSEKIT_EXCHANGE", "/srv/nbgrader/exchange")


# What a student sees in place of each solution.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A cell that runs longer than this is stopped and the notebook carries on;
# all three trainings together take a few seconds.
c.ExecutePreprocessor.timeout = 120
c.ExecutePreprocessor.interrupt_on_timeout = True

# --- coursekit (`coursekit config` lists every setting with its help) ---

# The instructor's modules the test cells import; coursekit runs them, from the master
# folder, in the grader's own process.  Only public_tests.py's lines appear in a failing
# test's traceback (students read its explanations, not init_utils' internals).  The compiled
# catalogues and locale/LANGUAGE come along, so a translated assignment's messages keep its language.
c.CourseKit.trusted_modules = ["public_tests.py", "init_utils.py", "locale/*/LC_MESSAGES/*.mo", "locale/LANGUAGE"]
c.CourseKit.traceback_modules = ["public_tests.py"]
# The release's init_utils imports these; importing them once per sandbox, not per
# submission, saves about 200 ms each.  The release's own two modules are imported once too,
# from the release folder as a submission would import them (about 3 ms a submission).
c.CourseKit.sandbox_preload = ["numpy", "numpy.random", "numpy.linalg", "numpy.testing",
                               "matplotlib", "matplotlib.pyplot", "h5py",
                               "public_tests", "init_utils"]
# Time limits are nbgrader's (ExecutePreprocessor.timeout above, for each cell and each call a
# test makes); coursekit's own c.CourseKit.wall_seconds is only a safety net over a whole sandbox run.
c.CourseKit.memory_mb = 2048

# --- Grading and feedback (README: "For instructors: grading with nbgrader") ---

# A student who deletes a test cell does not delete the test: nbgrader puts every
# grade cell the submission lacks back from the gradebook before grading.
c.OverwriteCells.add_missing_cells = True

# Feedback shows which test failed and why, never a hidden test's code or data:
# HideHiddenTests (coursekit.hidden's, which hide_hidden_tests.py next to this file names
# for nbgrader) strips the hidden regions and reduces their errors to one line.
# `coursekit feedback` adds it by itself to a course that lists no such preprocessor.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "hide_hidden_tests.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# nbgrader limits time (above) and output lines (LimitOutput) but not memory.  The
# grading kernel caps its own address space before any student code runs, so a
# runaway allocation raises MemoryError in that cell instead of exhausting the
# machine.  A kernel running this notebook peaks near 1.1 GiB of address space.
KERNEL_MEMORY_MB = int(os.environ.get("COURSEKIT_KERNEL_MEMORY_MB", "4096"))
_limit = KERNEL_MEMORY_MB * 2**20
c.Execute.extra_arguments = [
    "--IPKernelApp.exec_lines=__import__('resource').setrlimit("
    f"__import__('resource').RLIMIT_AS, ({_limit}, {_limit}))",
]
