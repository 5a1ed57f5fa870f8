"""The grader's side of one sandbox run: steps go out one message at a time, records come back.

Runs in: the grader's process (a coursekit worker), as the user who runs coursekit; it decodes
what the untrusted child sends and never evaluates or unpickles it.

A run is a list of steps (`Cell`, `Call`, `Test`), executed in order by the child
(coursekit/sandbox/_runner.py).  `feed` sends them over the run's channel, a stream socket, grouped as
"the cells up to the next call or test, then that call or test", and sends the next group only
once the records of the current one have arrived: the child never holds a later secret call's
arguments while it could still change an earlier call's result.  Cells carry no secrets (the
student's own code and the released locked cells), so they travel in bulk, and so do the calls
of a public test cell (anyone can read them in the release).

Record format (child -> grader, one per step, in order)::

    record := "CK" u32(json_len) u32(blob_len) json blob          (little-endian)
    json   := {"kind": "cell", "error": str|null, "arrays": []}
            | {"kind": "call", "index": int, "status": "ok"|"error"|"missing",
               "value": V, "error": str|null, "args_after": V|null,
               "stdout": str, "stderr": str, "arrays": [[dtype_str, shape, offset, nbytes], ...]}
            | {"kind": "test", "outputs": [{"stream": "stdout"|"stderr", "text": str}
                                           | {"error": [ename, evalue, [str, ...]]}], "arrays": []}
    V      := null | bool | int | float | str | [V, ...] | {"$tuple": [V, ...]}
            | {"$set": [V, ...]} | {"$frozenset": [V, ...]} | {"$dict": [[V, V], ...]}
            | {"$nd": i} | {"$np": i} | {"$opaque": type_name}

``$nd``/``$np`` refer to entry ``i`` of the record's "arrays", whose bytes are in the blob; each
entry may be referred to once, so the decoded value is never larger than what was sent, and
everything sent is capped by ``Limits.output_bytes``.  Nothing is unpickled or evaluated; a
record with anything wrong in it voids the whole run.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
import socket
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from coursekit.sandbox import _runner as runner

MAX_DEPTH = runner.MAX_DEPTH  # how deeply a value may nest and still cross (lists in lists, ...)

# Only these dtypes come back as arrays: booleans, integers and floats.
_DTYPE_RE = re.compile(r"[<>|=][biuf](1|2|4|8|16)")
_MAX_ARRAY_DIMS = 32
_HASHABLE_KINDS = (type(None), bool, int, float, str, tuple, frozenset)


@dataclass(frozen=True)
class Cell:
    """A notebook cell to run (its output is not kept; its error is, for the reason)."""

    label: str
    code: str


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple = ()  # JSON-able positional arguments; each call gets fresh copies
    # False for calls anyone can read in the release (a public test's): consecutive ones
    # travel in one message, which saves round trips; a secret call always travels alone.
    secret: bool = True


@dataclass(frozen=True)
class Test:
    """A test cell run in the sandbox in its place, as nbgrader would run it."""

    label: str
    code: str


Step = Cell | Call | Test


@dataclass(frozen=True)
class Opaque:
    """Stands for a returned object that is not plain data (it stayed in the sandbox)."""

    type_name: str


@dataclass
class CallResult:
    function: str
    status: str              # "ok" | "error" | "missing" | "not_run"
    value: object = None     # plain data, only when status == "ok"
    error: str | None = None
    args_after: list | None = None
    stdout: str = ""         # what the call printed (kept up to _runner.CAPTURE_CHARS)
    stderr: str = ""


@dataclass
class TestResult:
    label: str
    status: str              # "ran" | "not_run"
    outputs: list = field(default_factory=list)  # as in the record; error: [ename, evalue, traceback]


class Failure(enum.Enum):
    """What stopped a run that did not finish, which decides what the grader does with it."""

    GRADER = "grader"    # the sandbox machinery, not the submission: it stays ungraded, a re-run grades it
    FORGED = "forged"    # the child sent a malformed or forged record: nothing it said counts
    STUDENT = "student"  # the submission: time, memory or output limit, exit, crash, a broken way out


@dataclass
class SandboxResult:
    calls: list[CallResult]
    reason: str | None       # None if the run finished; else what stopped it, for an instructor
    output: str              # stdout + stderr that bypassed the capture, at most Limits.output_bytes
    code_errors: list[str] = field(default_factory=list)  # "label: error" of cells that failed
    tests: list[TestResult] = field(default_factory=list)
    completed: int = 0  # steps that reported; when fewer than all, the next one is where the run stopped
    void: bool = False  # the child sent something forged or broke the way out: nothing it said counts
    failure: Failure | None = None  # who is to blame for `reason` (None when the run finished)


def messages(steps: Sequence[Step]) -> Iterator[tuple[list[Cell], list[Call], Test | None, int]]:
    """(cells, then the calls or the test that end the group, the first call's ordinal) per
    message: a secret call or a test travels alone after the cells before it; public calls in
    a row travel together."""
    cells: list[Cell] = []
    calls: list[Call] = []
    ordinal = 0
    for step in steps:
        if calls and not (isinstance(step, Call) and not step.secret and not calls[-1].secret):
            yield cells, calls, None, ordinal
            ordinal += len(calls)
            cells, calls = [], []
        if isinstance(step, Cell):
            cells.append(step)
        elif isinstance(step, Call):
            calls.append(step)
        else:
            yield cells, [], step, ordinal
            cells = []
    if cells or calls:
        yield cells, calls, None, ordinal


def _message(cells: list[Cell], calls: list[Call], test: Test | None, ordinal: int) -> bytes:
    body: dict = {"cells": [[c.label, c.code] for c in cells],
                  "calls": [[ordinal + i, c.function, json.dumps(list(c.args))] for i, c in enumerate(calls)]}
    if test is not None:
        body["test"] = [test.label, test.code]
    data = json.dumps(body).encode()
    return runner.MESSAGE_HEADER.pack(len(data)) + data


def feed(channel: socket.socket, steps: Sequence[Step], budget: int) -> tuple[bytes, str | None]:
    """Send the steps, pacing calls and tests on their records; (records received, problem).

    Returns when every step has its record and the channel is drained (the child exits after
    "end"), when the child is gone (end of file), or at the first sign of a forged or oversized
    record (`problem` says which; the run is then void).  The child limits each step itself
    (`Limits.cell_seconds`, which it has with the run's other limits).
    """
    records = _Records(channel, budget)
    try:
        for cells, calls, test, ordinal in messages(steps):
            channel.sendall(_message(cells, calls, test, ordinal))
            for _ in range(len(cells) + len(calls) + (test is not None)):
                if not records.next():
                    return bytes(records.data), None
        end = json.dumps({"end": True}).encode()
        channel.sendall(runner.MESSAGE_HEADER.pack(len(end)) + end)
        while records.next():  # anything more is a forgery: results() says so
            pass
    except _Refused as refused:
        return bytes(records.data), str(refused)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the child died; the zygote's status says how
    return bytes(records.data), None


class _Refused(Exception):
    """The child sent something the grader stops reading at once."""


class _Records:
    """The records arriving on a run's channel, read in large pieces: one system call for all
    the records the child has written so far, not two per record."""

    CHUNK = 1 << 16

    def __init__(self, channel: socket.socket, budget: int) -> None:
        self.channel, self.budget = channel, budget
        self.data = bytearray()  # everything received
        self.whole = 0  # where the last whole record ends in it
        self._buffer = bytearray(self.CHUNK)

    def next(self) -> bool:
        """Wait for the next whole record; False at the end of the stream."""
        header = runner.RECORD_HEADER
        while True:
            if len(self.data) - self.whole >= header.size:
                magic, json_len, blob_len = header.unpack_from(self.data, self.whole)
                if magic != runner.RECORD_MAGIC:
                    raise _Refused("bad record marker")
                end = self.whole + header.size + json_len + blob_len
                if end > self.budget:
                    raise _Refused("too large")
                if len(self.data) >= end:
                    self.whole = end
                    return True
            size = self.channel.recv_into(self._buffer)
            if not size:
                return False
            self.data += memoryview(self._buffer)[:size]
            if len(self.data) > self.budget:
                raise _Refused("too large")


# --------------------------------------------------------------------------- decoding


def results(steps: Sequence[Step], data: bytes, reason: str | None, output: str,  # noqa: C901, PLR0912 (one pass matching records to steps)
            void: bool = False, failure: Failure | None = None) -> SandboxResult:
    """Match the records to the steps.  A malformed record voids the whole run (reason says
    why); a run that ended early keeps what finished, fails the step in progress, and leaves
    the rest not run.  `failure` says who is to blame for `reason`; by default the submission,
    or the child's records when they are malformed and nothing else stopped the run."""
    records: list[dict] = []
    try:
        if void:
            raise ValueError("voided")
        parsed = list(_parse_records(data))
        if len(parsed) > len(steps):
            raise ValueError("records out of order")
        ordinal = 0
        for step, received in zip(steps, parsed):
            kind = {Cell: "cell", Call: "call", Test: "test"}[type(step)]
            if received["kind"] != kind or (kind == "call" and received["index"] != ordinal):
                raise ValueError("records out of order")
            ordinal += kind == "call"
            records.append(received)
    except ValueError as exc:
        if reason is None:  # (a voided run has its reason and its failure)
            reason, failure = f"malformed result from the sandbox: {exc}", Failure.FORGED
        records = []
        void = True
    else:
        void = False
    calls, tests, code_errors = [], [], []
    stopped = reason or "the process ended before reporting every step"
    for position, step in enumerate(steps):
        record = records[position] if position < len(records) else None
        in_progress = not void and position == len(records)
        if isinstance(step, Cell):
            if record and record["error"]:
                code_errors.append(f"{step.label}: {record['error']}")
        elif isinstance(step, Call):
            if record:
                calls.append(CallResult(step.function, record["status"], record["value"], record["error"],
                                        record["args_after"], record["stdout"], record["stderr"]))
            elif in_progress:
                calls.append(CallResult(step.function, "error",
                                        error=f"the sandbox stopped during this call: {stopped}"))
            else:
                calls.append(CallResult(step.function, "not_run"))
        elif record:
            tests.append(TestResult(step.label, "ran", record["outputs"]))
        elif in_progress:
            tests.append(TestResult(step.label, "ran", [{"error": ["SandboxStopped", stopped, []]}]))
        else:
            tests.append(TestResult(step.label, "not_run"))
    if len(records) < len(steps) and not void:
        reason = stopped
    if reason and failure is None:
        failure = Failure.STUDENT
    return SandboxResult(calls, reason, output, code_errors, tests, len(records), void, failure)


def _parse_records(data: bytes) -> Iterator[dict]:
    """Yield the complete records; ValueError if anything is off."""
    view = memoryview(data)
    pos = 0
    header = runner.RECORD_HEADER
    while pos + header.size <= len(view):
        magic, json_len, blob_len = header.unpack_from(view, pos)
        if magic != runner.RECORD_MAGIC:
            raise ValueError("bad record marker")
        start = pos + header.size
        end = start + json_len + blob_len
        if end > len(view):
            return  # cut off mid-write when the process died: the reason says why
        try:
            record = json.loads(bytes(view[start:start + json_len]))
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"record is not valid JSON ({type(exc).__name__})") from None
        yield _check_record(record, view[start + json_len:end])
        pos = end


def _check_record(record: object, blob: memoryview) -> dict:
    if not isinstance(record, dict) or record.get("kind") not in ("cell", "call", "test"):
        raise ValueError("record without a known kind")
    kind = record["kind"]
    arrays = [_array(meta, blob) for meta in _as_list(record.get("arrays"), "arrays")]
    if kind == "cell":
        return {"kind": "cell", "error": _text(record.get("error"), "error message", optional=True)}
    if kind == "test":
        return {"kind": "test", "outputs": [_test_output(o) for o in _as_list(record.get("outputs"), "outputs")]}
    status = record.get("status")
    if status not in ("ok", "error", "missing"):
        raise ValueError(f"unknown call status {status!r}")
    index = record.get("index")
    if type(index) is not int:
        raise ValueError("call record without an index")
    decoder = _Decoder(arrays)
    return {"kind": "call", "index": index, "status": status,
            "value": decoder.decode(record.get("value")),
            "error": _text(record.get("error"), "error message", optional=True),
            "args_after": _as_list(decoder.decode(record.get("args_after")), "args_after", allow_none=True),
            "stdout": _text(record.get("stdout", ""), "stdout", limit=runner.CAPTURE_CHARS + 100),
            "stderr": _text(record.get("stderr", ""), "stderr", limit=runner.CAPTURE_CHARS + 100)}


def _test_output(output: object) -> dict:
    if isinstance(output, dict) and output.get("stream") in ("stdout", "stderr"):
        return {"stream": output["stream"], "text": _text(output.get("text"), "output",
                                                          limit=runner.CAPTURE_CHARS + 100)}
    if isinstance(output, dict) and isinstance(output.get("error"), list) and len(output["error"]) == 3:
        ename, evalue, trace = output["error"]
        lines = [_text(line, "traceback", limit=runner.ERROR_CHARS) for line in _as_list(trace, "traceback")]
        return {"error": [_text(ename, "error name", limit=200), _text(evalue, "error message"),
                          lines[-runner.TRACEBACK_LINES:]]}
    raise ValueError("bad test output")


def clean_text(text: str) -> str:
    """The text, with lone surrogates (which no file or database can store) replaced by '?'."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _text(value: object, what: str, *, optional: bool = False, limit: int = runner.ERROR_CHARS) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    return clean_text(value[:limit])


def _as_list(value: object, what: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value


def _array(meta: object, blob: memoryview) -> np.ndarray:
    if not (isinstance(meta, list) and len(meta) == 4):
        raise ValueError("bad array description")
    dtype_str, shape, offset, nbytes = meta
    if not (isinstance(dtype_str, str) and _DTYPE_RE.fullmatch(dtype_str)):
        raise ValueError(f"array dtype {dtype_str[:40]!r} is not bool/int/float" if isinstance(dtype_str, str)
                         else "array dtype is not a string")
    if not (isinstance(shape, list) and len(shape) <= _MAX_ARRAY_DIMS
            and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError("bad array shape")
    if not (type(offset) is int and type(nbytes) is int and 0 <= offset
            and offset + nbytes <= len(blob)):
        raise ValueError("array bytes out of range")
    try:
        dtype = _dtype(dtype_str)
    except TypeError:  # e.g. "<f16" on a machine without a 128-bit float
        raise ValueError(f"array dtype {dtype_str!r} is not known here") from None
    count = math.prod(shape)
    if count * dtype.itemsize != nbytes:
        raise ValueError("array size does not match its shape")
    return np.frombuffer(blob[offset:offset + nbytes], dtype=dtype, count=count).reshape(shape)


@functools.lru_cache(maxsize=64)
def _dtype(dtype_str: str) -> np.dtype:
    return np.dtype(dtype_str)


class _Decoder:
    """Plain data from the JSON of one record: each array once, containers with their type."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.used: set[int] = set()
        self.nodes = 0

    def decode(self, value: object, depth: int = 0) -> object:  # noqa: C901, PLR0912 (one branch per kind of value of the wire format)
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > runner.MAX_NODES:
            raise ValueError("value nested too deeply or too large")
        if value is None or type(value) in (bool, int, float):
            return value
        if type(value) is str:
            return clean_text(value)
        if type(value) is list:
            return [self.decode(v, depth + 1) for v in value]
        if type(value) is dict and len(value) == 1:
            (tag, inner), = value.items()
            if tag == "$dict" and type(inner) is list:
                out = {}
                for pair in inner:
                    if not (type(pair) is list and len(pair) == 2):
                        raise ValueError("bad dict entry")
                    out[self.key(pair[0], depth)] = self.decode(pair[1], depth + 1)
                return out
            if tag == "$tuple" and type(inner) is list:
                return tuple(self.decode(v, depth + 1) for v in inner)
            if tag in ("$set", "$frozenset") and type(inner) is list:
                items = [self.key(v, depth) for v in inner]
                return set(items) if tag == "$set" else frozenset(items)
            if tag in ("$nd", "$np") and type(inner) is int and 0 <= inner < len(self.arrays):
                if inner in self.used:
                    raise ValueError("an array is referred to more than once")
                self.used.add(inner)
                array = self.arrays[inner].copy()  # writable, owning its memory
                return array if tag == "$nd" else array[()]
            if tag == "$opaque" and type(inner) is str:
                return Opaque(clean_text(inner[:200]))
        raise ValueError("unknown value encoding")

    def key(self, value: object, depth: int) -> object:
        """A dict key or set element: it must come back hashable, as it was in the child."""
        decoded = self.decode(value, depth + 1)
        if not isinstance(decoded, _HASHABLE_KINDS + (Opaque, np.generic)):
            raise ValueError("unhashable dict key or set element")
        try:
            hash(decoded)
        except TypeError:
            raise ValueError("unhashable dict key or set element") from None
        return decoded
