"""What a student of this course writes: the code that replaces each stub (a correct version).

The edits that put code into a release notebook the way a student does (fill a solution cell's
stub, rewrite the cell) are coursekit's (`coursekit.classroom`), shared with the tool's tests on
their fixture courses; they are imported here so that the course's scripts, benchmarks and lesson
tests find a student's answers and edits in one place.  The correct answers are written out here by
hand (not taken from the master notebook), so the tests that use them check the course against an
independent answer.
"""

from __future__ import annotations

from coursekit.classroom import (  # noqa: F401 (the course's scripts and tests import them from here)
    edit_cells,
    fill_stub,
    grade_id,
    index_of,
    solve,
    solve_notebook,
    solved_cell,
)

# Lines that replace the stub inside `for l in range(1, len(layers_dims)):` of each exercise.
CORRECT = {
    "initialize_parameters_zeros": (
        'parameters["W" + str(l)] = np.zeros((layers_dims[l], layers_dims[l - 1]))\n'
        'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
    ),
    "initialize_parameters_random": (
        'parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * 10\n'
        'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
    ),
    "initialize_parameters_he": (
        'parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1])'
        " * np.sqrt(2 / layers_dims[l - 1])\n"
        'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
    ),
}
