"""Differential testing against nbgrader (issue 9, item 6), a seeded sample of it.

`scripts/fuzz.py` writes notebooks that mix correct and wrong solutions with the unusual things
students and their tools do (magics, CRLF, NFKC identifiers, `exec`, `global` installers,
settings in other cells, helper and scratch cells above and below the tests, deleted, duplicated
and metadata-stripped cells, exceptions, stderr).  Stock `nbgrader autograde` (one batch over
every student) grades one copy of the course, `coursekit autograde` another, and every test
cell's score must agree, except where coursekit recovers on purpose and names the recovery in
its reason (fuzz.compare).

`make fuzz` grades the full set (300 notebooks, every feature).  This sample leaves out the
classes where coursekit still disagrees with nbgrader on main (KNOWN_DISAGREEMENTS, one line
each; /work/shared/team/findings.md has a minimal notebook and both scores for each), so that it
guards what already agrees.  Shrink the list as coursekit learns top-to-bottom semantics.
"""

from __future__ import annotations

import pytest

from scripts import fuzz
from scripts.courses import build_template, gradebook_scores
from tests.helpers import copy_course, nbgrader_env

# Stock nbgrader takes about 6 s per notebook: the sample costs about 2.5 minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SAMPLE = 24
SEED = 9

# "feature" or "feature:style" -> what coursekit does differently today.  None on main: the
# classes F1-F12 of the first runs (magics, settings in other cells, `global`, NFKC, `exec`,
# definitions below the tests, a deleted setup cell, `del`) agree since top-to-bottom grading,
# E1 (`%timeit` first in a solution cell) and E2 (`warnings.warn` in a graded function) since
# b12d45e; the last full run (docs/coursekit.md) has no disagreement left.
KNOWN_DISAGREEMENTS: dict[str, str] = {}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    base = tmp_path_factory.mktemp("differential")
    template = build_template(base / "template")  # this course: the fuzz writes its lesson's mistakes
    manifest = fuzz.fuzz_class(template, SAMPLE, SEED, without=KNOWN_DISAGREEMENTS)
    # Two batches side by side: stock nbgrader keeps one core busy.
    reference = fuzz.nbgrader_reference(template, base, nbgrader_env(), jobs=2)
    fast = copy_course(template, base / "coursekit")
    reasons = fuzz.coursekit_autograde(fast, nbgrader_env())
    results = fuzz.compare(manifest, reference["scores"], gradebook_scores(fast), reasons, reference["failed"])
    return manifest, results, reference


def test_the_sample_holds_every_feature_not_known_to_disagree(compared):
    manifest, _, _ = compared
    used = {name for entry in manifest.values() for name, _, _ in entry["features"]}
    assert used == set(fuzz.allowed_styles(KNOWN_DISAGREEMENTS))


def test_per_cell_scores_agree_with_nbgrader_outside_documented_recoveries(compared):
    manifest, results, _ = compared
    assert len(results) == SAMPLE * len(fuzz.TESTS)
    differ = fuzz.listing(manifest, results, "disagree")
    assert not differ, f"coursekit and nbgrader disagree (add a finding, and the class to KNOWN_DISAGREEMENTS " \
                       f"only if it is a new class):\n{differ}"


def test_nbgrader_fails_only_on_notebooks_coursekit_documents_a_recovery_for(compared):
    # The reference must have graded everything else.  Stock nbgrader cannot grade a notebook
    # with a duplicated grade id (it even stops the batch: fuzz.nbgrader_autograde sets the
    # student aside and carries on), nor, with add_missing_cells, one stripped of all metadata.
    manifest, results, reference = compared
    for student in reference["failed"]:
        assert any(fuzz.FEATURES[name].recovery for name, _, _ in manifest[student]["features"]), student
    recovered = {r.student for r in results if r.verdict == "recovery"}
    assert all(any(fuzz.FEATURES[name].recovery for name, _, _ in manifest[s]["features"]) for s in recovered)
