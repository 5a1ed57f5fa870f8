"""Build a class of varied submissions from the release notebook.

    python -m scripts.make_class COURSE_DIR [--count 200] [--seed 0]

Writes COURSE_DIR/submitted/<student>/initialization/initialization.ipynb (+ timestamp.txt) and
COURSE_DIR/class_manifest.json, which lists each student's variant per exercise and the score
each test cell should get.  The first students cover every variant of every exercise once (the
others correct); the rest mix variants at random, and some carry harmless extra cells.

A variant is what a student writes in one solution cell: correct in several styles, or one of
the typical mistakes.  Its `expect` says, per test cell (public, hidden), whether it passes; those
were worked out by hand from the tests, not by running a grader.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from coursekit.classroom import TIMESTAMP, Exercise, Variant, body, sub, then, unchanged, write_class
from scripts.course import ASSIGNMENT, RELEASE
from scripts.student_work import CORRECT

__all__ = ["EXERCISES", "TIMESTAMP", "SCRATCH", "make_class"]

PASS, FAIL = (True, True), (False, False)
UNTOUCHED = Variant("untouched", FAIL, unchanged)
ZEROS_W = 'parameters["W" + str(l)] = '
ZEROS = [
    Variant("correct", PASS, body(CORRECT["initialize_parameters_zeros"])),
    Variant("correct-fstring", PASS, body('parameters[f"W{l}"] = np.zeros(shape=(layers_dims[l], layers_dims[l-1]))\n'
                                          'parameters[f"b{l}"] = np.zeros(shape=(layers_dims[l], 1))')),
    Variant("correct-comprehension", PASS, lambda source: (
        "def initialize_parameters_zeros(layers_dims):\n"
        "    L = len(layers_dims)\n"
        "    weights = {f'W{l}': np.zeros((layers_dims[l], layers_dims[l - 1])) for l in range(1, L)}\n"
        "    biases = {f'b{l}': np.zeros((layers_dims[l], 1)) for l in range(1, L)}\n"
        "    return {**weights, **biases}\n")),
    Variant("layers-dims-1", FAIL, body(ZEROS_W + "np.zeros((layers_dims[1], layers_dims[l - 1]))\n"
                                        'parameters["b" + str(l)] = np.zeros((layers_dims[1], 1))')),
    Variant("int-dtype", FAIL, body(ZEROS_W + "np.zeros((layers_dims[l], layers_dims[l - 1]), dtype=int)\n"
                                    'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1), dtype=int)')),
    Variant("bias-1d", FAIL, body(ZEROS_W + "np.zeros((layers_dims[l], layers_dims[l - 1]))\n"
                                  'parameters["b" + str(l)] = np.zeros(layers_dims[l])')),
    Variant("swapped", FAIL, body(ZEROS_W + "np.zeros((layers_dims[l - 1], layers_dims[l]))\n"
                                  'parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))')),
    Variant("no-return", FAIL, then(body(CORRECT["initialize_parameters_zeros"]),
                                    sub("    return parameters", "    print(parameters)"))),
    Variant("at-most-4-layers", (True, False), then(body(CORRECT["initialize_parameters_zeros"]),
                                                    sub("range(1, len(layers_dims))", "range(1, min(len(layers_dims), 5))"))),
    UNTOUCHED,
]

RANDOM_W = 'parameters["W" + str(l)] = np.random.'
RANDOM_B = '\nparameters["b" + str(l)] = np.zeros((layers_dims[l], 1))'
RANDOM = [
    Variant("correct", PASS, body(CORRECT["initialize_parameters_random"])),
    Variant("correct-fstring", PASS, body('parameters[f"W{l}"] = 10 * np.random.randn(layers_dims[l], layers_dims[l-1])\n'
                                          'parameters[f"b{l}"] = np.zeros((layers_dims[l], 1))')),
    Variant("correct-normal", PASS, body(
        "rows, cols = layers_dims[l], layers_dims[l - 1]\n"
        'parameters["W" + str(l)] = np.random.randn(rows, cols) * 10.0\n'
        'parameters["b" + str(l)] = np.zeros((rows, 1))')),
    Variant("no-seed", FAIL, then(body(CORRECT["initialize_parameters_random"]), sub("np.random.seed(3)", "pass"))),
    Variant("seed-in-loop", FAIL, body("np.random.seed(3)\n" + CORRECT["initialize_parameters_random"])),
    Variant("rand-uniform", FAIL, body(RANDOM_W + "rand(layers_dims[l], layers_dims[l - 1]) * 10" + RANDOM_B)),
    Variant("times-0.01", FAIL, body(RANDOM_W + "randn(layers_dims[l], layers_dims[l - 1]) * 0.01" + RANDOM_B)),
    Variant("nonzero-bias", FAIL, body(RANDOM_W + "randn(layers_dims[l], layers_dims[l - 1]) * 10\n"
                                       'parameters["b" + str(l)] = np.random.randn(layers_dims[l], 1)')),
    UNTOUCHED,
]

HE_W = 'parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * '
HE = [
    Variant("correct", PASS, body(CORRECT["initialize_parameters_he"])),
    Variant("correct-math", PASS, then(body(HE_W + "math.sqrt(2 / layers_dims[l - 1])" + RANDOM_B),
                                       lambda source: "import math\n\n" + source)),
    Variant("correct-power", PASS, body(HE_W + "(2 / layers_dims[l - 1]) ** 0.5" + RANDOM_B)),
    Variant("correct-helper", PASS, then(body(HE_W + "he_scale(layers_dims[l - 1])" + RANDOM_B),
                                         lambda source: "def he_scale(n_prev):\n    return np.sqrt(2.0 / n_prev)\n\n\n"
                                                        + source)),
    Variant("xavier", FAIL, body(HE_W + "np.sqrt(1 / layers_dims[l - 1])" + RANDOM_B)),
    Variant("divided", FAIL, body(HE_W + "1 / np.sqrt(2 / layers_dims[l - 1])" + RANDOM_B)),
    Variant("current-layer", FAIL, body(HE_W + "np.sqrt(2 / layers_dims[l])" + RANDOM_B)),
    Variant("no-seed", FAIL, then(body(CORRECT["initialize_parameters_he"]), sub("np.random.seed(3)", "pass"))),
    Variant("seed-in-loop", FAIL, body("np.random.seed(3)\n" + CORRECT["initialize_parameters_he"])),
    UNTOUCHED,
]

# Each exercise's solution cell (its grade id, the function's name) -> its variants and test cells.
EXERCISES = {
    "initialize_parameters_zeros": Exercise(tuple(ZEROS), ("test_zeros_public", "test_zeros_hidden")),
    "initialize_parameters_random": Exercise(tuple(RANDOM), ("test_random_public", "test_random_hidden")),
    "initialize_parameters_he": Exercise(tuple(HE), ("test_he_public", "test_he_hidden")),
}

SCRATCH = ("# trying things out\n"
           "p = initialize_parameters_he([2, 3, 1])\n"
           "print({k: v.shape for k, v in p.items()})")


def make_class(course_dir: Path, count: int = 200, seed: int = 0) -> dict[str, dict]:
    """Write the submissions (coursekit.classroom.write_class); return the manifest
    {student: {"variants", "expected"}}."""
    release = json.loads(RELEASE.read_text(encoding="utf-8"))
    return write_class(course_dir, ASSIGNMENT, release, EXERCISES, count, seed, scratch=SCRATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("course_dir", type=Path)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    manifest = make_class(args.course_dir, args.count, args.seed)
    print(f"wrote {len(manifest)} submissions under {args.course_dir / 'submitted'}")


if __name__ == "__main__":
    main()
