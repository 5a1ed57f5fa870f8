"""How a worker reads a submitted notebook and writes the autograded one, in its own process:
the nesting limit, the file's exact bytes, cell ids, the sandbox records read in pieces, and
a failing test cell's objects freed at once."""

from __future__ import annotations

import gc
import json
import socket
import struct
import weakref

from nbformat import NotebookNode

from coursekit import score
from coursekit.extract import AssignmentPlan, MasterCell
from coursekit.read import Unreadable, parse_notebook
from coursekit.sandbox import _protocol as protocol
from coursekit.sandbox import _runner as runner


def notebook_bytes(metadata: object) -> bytes:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["a\n", "b"]}],
                       "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}).encode()


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def test_a_notebook_nested_64_levels_deep_is_read_and_65_is_refused():
    # The notebook is level 0 and its metadata level 1, so 63 dicts inside the metadata put the
    # innermost value at level 64 (the limit) and 64 dicts put it at level 65.
    assert parse_notebook(notebook_bytes(nested(63))).metadata["a"]["a"]["a"] == nested(60)
    refused = parse_notebook(notebook_bytes(nested(64)))
    assert isinstance(refused, Unreadable) and "nested deeper than 64 levels" in refused.reason
    assert isinstance(parse_notebook(notebook_bytes([[[[]]]] * 3)), NotebookNode)


def test_a_read_notebook_is_notebook_nodes_throughout_with_sources_joined():
    nb = parse_notebook(notebook_bytes({"kernelspec": {"name": "python3"}}))
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].source == "a\nb" and type(nb.cells[0].metadata) is NotebookNode


def restored(grade_id: str, source: str, cell_id: str) -> NotebookNode:
    cell = score._master_cell(MasterCell(0, grade_id, "markdown", "locked", source,
                                         {"grade_id": grade_id, "locked": True}), None, "c0ffee")
    cell["id"] = cell_id
    return cell


def test_the_autograded_file_is_compact_utf8_json_and_a_lone_surrogate_becomes_a_question_mark():
    nb = NotebookNode(cells=[restored("intro", "# Intro é \ud800", "aaaa0001")], metadata=NotebookNode(), nbformat=4,
                      nbformat_minor=5)
    assert score.notebook_file(nb) == (
        '{"cells":[{"cell_type":"markdown","metadata":{"nbgrader":{"grade_id":"intro","locked":true,'
        '"checksum":"c0ffee"}},"source":"# Intro é ?","id":"aaaa0001"}],"metadata":{},"nbformat":4,'
        '"nbformat_minor":5}\n').encode()


def test_every_cell_of_an_autograded_notebook_gets_its_own_id():
    cells = [MasterCell(0, "intro", "markdown", "text", "# Intro", {"grade_id": "intro", "locked": True}),
             MasterCell(1, "t1", "code", "test", "assert f() == 1", {"grade_id": "t1", "grade": True, "locked": True},
                        points=1.0)]
    plan = AssignmentPlan("a", "a", cells, graded={}, trusted=[], skipped=[], tests_of={})
    nb = score.autograded_notebook(None, plan, score.failed_outcomes(plan, "unreadable"))
    ids = [cell["id"] for cell in nb.cells]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert all(len(i) == 8 and set(i) <= set("0123456789abcdef") for i in ids)


def record(kind: str) -> bytes:
    body = json.dumps({"kind": kind, "error": None, "arrays": []}).encode()
    return runner.RECORD_HEADER.pack(runner.RECORD_MAGIC, len(body), 0) + body


def test_records_written_together_are_read_one_by_one_and_a_cut_one_is_not_a_record():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(record("cell") * 3 + record("cell")[:10])
        theirs.close()
        records = protocol._Records(ours, budget=10_000)
        assert [records.next() for _ in range(4)] == [True, True, True, False]
        assert len(records.data) == 3 * len(record("cell")) + 10


def test_a_record_past_the_budget_or_with_a_wrong_marker_stops_the_reading():
    for data, budget, problem in ((record("cell"), 20, "too large"),
                                  (struct.pack("<2sII", b"XX", 1, 0) + b"{", 10_000, "bad record marker")):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            theirs.sendall(data)
            records = protocol._Records(ours, budget)
            try:
                records.next()
            except protocol._Refused as refused:
                assert str(refused) == problem
            else:
                raise AssertionError(f"not refused: {problem}")


class Marker:
    """Something a failing test cell holds, to see when it is freed."""


def test_a_failing_test_cells_objects_are_freed_as_soon_as_it_ran():
    namespace = {"Marker": Marker, "kept": []}
    gc.disable()  # freed by reference counting alone, not by a later garbage collection
    try:
        outputs = score.run_cell("def check():\n    held = Marker()\n    kept.append(weakref(held))\n"
                                 "    raise AssertionError('wrong')\ncheck()\n",
                                 dict(namespace, weakref=weakref.ref), "<t1>")
        assert [o.ename for o in outputs if o.output_type == "error"] == ["AssertionError"]
        assert namespace["kept"][0]() is None
    finally:
        gc.enable()
