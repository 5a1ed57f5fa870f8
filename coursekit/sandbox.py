"""Run untrusted student code in a separate, locked-down process and get plain data back.

Usage::

    with Sandbox() as box:               # one pre-warmed zygote; one per worker for parallelism
        result = box.run(code, [Call("initialize_parameters_he", ([2, 4, 1],))],
                         workdir_files=Path("release/initialization"))

How it works (threat model and limits: SECURITY.md).  A :class:`Sandbox` starts a
zygote (coursekit/_sandbox_child.py) that imports NumPy and Matplotlib once and
moves itself into its own mount, network and IPC namespaces with a read-only
chroot.  For each run the zygote forks a child, which takes a fresh uid, sets
its resource limits, executes the code and calls the functions.  The child
writes its results to a memory file as records of JSON plus raw array bytes;
this process, never the child, turns them back into Python values and refuses
anything that is not plain data, oversized or malformed.  A machine that does not
allow every one of these protections is refused (`IsolationMissing`, naming what is
missing and what to do) unless the caller opts in with ``Sandbox(insecure=True)``.

Result file format (written by the child, one record per event)::

    record := "CK" u32(json_len) u32(blob_len) json blob          (little-endian)
    json   := {"kind": "loaded", "errors": [str], "arrays": []}
            | {"kind": "call", "index": int, "status": "ok"|"error"|"missing",
               "value": V, "error": str|null, "args_after": V|null,
               "arrays": [[dtype_str, shape, offset, nbytes], ...]}
    V      := null | bool | int | float | str | [V, ...]
            | {"$dict": [[str, V], ...]} | {"$nd": i} | {"$np": i} | {"$opaque": type_name}

``$nd``/``$np`` refer to entry ``i`` of the record's "arrays", whose bytes are in
the blob; ``$np`` is a NumPy scalar.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import multiprocessing.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from coursekit import _sandbox_child as child

__all__ = ["Call", "CallResult", "Isolation", "IsolationMissing", "Limits", "Opaque", "Sandbox",
           "SandboxResult", "SandboxError", "scratch_folder"]

# A course preloads more with c.CourseKit.sandbox_preload (coursekit/config.py).
DEFAULT_PRELOAD = ("numpy", "numpy.random", "numpy.linalg", "numpy.testing")
# Only these dtypes come back as arrays: booleans, integers and floats.
_DTYPE_RE = re.compile(r"[<>|=][biuf](1|2|4|8|16)")
_MAX_ARRAY_DIMS = 32
# How long to wait for the zygote beyond the run's own wall-clock limit before
# deciding that the zygote itself is stuck.
_SUPERVISOR_GRACE_SECONDS = 15.0
_MIN_MEMORY_BYTES = 512 << 20


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory, processes and files are enforced with RLIMITs in the child."""

    wall_seconds: float = 20.0        # the whole run: loading the code and every call
    cpu_seconds: int = 10             # RLIMIT_CPU
    memory_bytes: int = 2 * 1024**3   # RLIMIT_AS: address space, including preloaded libraries
    max_processes: int = 16           # RLIMIT_NPROC (processes + threads); each run has its own uid
    open_files: int = 64              # RLIMIT_NOFILE
    output_bytes: int = 1 << 20       # captured stdout+stderr, and the size of the result file
    file_bytes: int = 16 << 20        # RLIMIT_FSIZE: the largest file the code may write
    disk_bytes: int = 64 << 20        # size of the tmpfs holding the working directory
    allow_fork: bool = False          # False: seccomp refuses new processes (threads still work)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "allow_fork":
                if not isinstance(value, bool):
                    raise ValueError(f"Limits.allow_fork must be True or False, got {value!r}")
                continue
            kinds = (int, float) if f.name == "wall_seconds" else (int,)
            if not isinstance(value, kinds) or isinstance(value, bool) or value <= 0:
                kind = "number" if f.name == "wall_seconds" else "whole number"
                raise ValueError(f"Limits.{f.name} must be a positive {kind}, got {value!r}")
        if self.memory_bytes < _MIN_MEMORY_BYTES:
            raise ValueError(f"Limits.memory_bytes must be at least {_size(_MIN_MEMORY_BYTES)}: "
                             "the preloaded Python, NumPy and Matplotlib alone map about 170 MB")


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple = ()  # JSON-able positional arguments; each call gets fresh copies


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


@dataclass
class SandboxResult:
    calls: list[CallResult]
    reason: str | None       # None if the run finished; else what stopped it, for an instructor
    output: str              # stdout + stderr, at most Limits.output_bytes
    code_errors: list[str] = field(default_factory=list)  # exceptions while executing `code`


@dataclass(frozen=True)
class Isolation:
    """Which protections the zygote could set up on this machine (see SECURITY.md)."""

    user: bool         # each run under its own unprivileged uid
    filesystem: bool   # read-only chroot without the course directory
    network: bool      # empty network namespace
    ipc: bool          # private System V IPC / POSIX message queues
    seccomp: bool      # system call filter (no new processes unless Limits.allow_fork)
    notes: tuple[str, ...]


class SandboxError(RuntimeError):
    """The sandbox machinery itself failed (not the student's code)."""


class IsolationMissing(SandboxError):
    """This machine cannot isolate submissions fully; the message names what and what to do."""

    def __init__(self, message: str, missing: tuple[str, ...] = ()) -> None:  # () when unpickled
        super().__init__(message)
        self.missing = missing  # Isolation field names, e.g. ("filesystem", "network")


# Each protection of `Isolation`, and what a submission can do without it.
_MEASURES = {
    "user": "a separate user id for each run (without it the submission acts as the grader's "
            "own user: it can change the gradebook, other students' work and the course's "
            "nbgrader_config.py)",
    "filesystem": "a private read-only view of the machine (without it the submission can read "
                  "the master notebook, the hidden tests, the gradebook and other students' work)",
    "network": "a private network namespace (without it the submission can reach the internet "
               "and every service of this machine)",
    "ipc": "private System V IPC and message queues (without them runs can talk to each other)",
    "seccomp": "the system-call filter (without it the submission can start processes, open "
               "AF_VSOCK sockets to the virtual machine's host and reach rarely used kernel code)",
}


def _missing(isolation: Isolation) -> tuple[str, ...]:
    return tuple(name for name in _MEASURES if not getattr(isolation, name))


def _refusal(isolation: Isolation) -> str:
    """Why coursekit will not grade on this machine, and what the instructor can do."""
    missing = _missing(isolation)
    todo = []
    if not isolation.user:
        todo.append("run coursekit as root (with sudo, or in a container where it runs as root)")
    elif {"filesystem", "network", "ipc"} & set(missing):
        todo.append("give the grader CAP_SYS_ADMIN so that it can create namespaces: run it as "
                    "root on the host, or start its container with --cap-add SYS_ADMIN (Docker "
                    "also needs --security-opt seccomp=unconfined or a profile that allows "
                    "unshare and mount)")
    if not isolation.seccomp:
        todo.append("grade on an x86_64 machine (the filter is written for x86_64)")
    return ("coursekit refuses to grade: the sandbox on this machine lacks "
            + "; ".join(_MEASURES[m] for m in missing)
            + (f". The sandbox says: {'; '.join(isolation.notes)}" if isolation.notes else "")
            + f". To fix it, {' and '.join(todo)}. To grade anyway without "
            + ("this protection" if len(missing) == 1 else "these protections")
            + ", pass --insecure (Python: insecure=True); every reason will then say so.")


class Sandbox:
    """One pre-warmed zygote; runs one submission at a time (thread-safe, serialised).

    For N submissions in parallel create N of these (one per worker thread or
    process).  A Sandbox used after os.fork() starts its own zygote in the new
    process.
    """

    def __init__(self, *, preload: Sequence[str] = DEFAULT_PRELOAD,
                 readonly_paths: Sequence[str | Path] = (), insecure: bool = False) -> None:
        """`preload`: modules the zygote imports once, so that runs need not (importing
        Matplotlib in every run would cost about 200 ms).  `readonly_paths`: extra
        directories the submission may read, e.g. a data folder outside the Python
        installation (the release folder is copied in anyway).

        If the machine does not allow every protection of `Isolation`, starting the
        zygote raises `IsolationMissing`, unless `insecure` is True: then it runs with
        what it has and `insecure_note` names what is missing."""
        self._config = {"preload": list(preload), "disk_bytes": Limits.disk_bytes,
                        "readonly_paths": [str(p) for p in readonly_paths]}
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._host_dir: str | None = None
        self._owner_pid = -1
        self._isolation: Isolation | None = None
        self.insecure = insecure

    # -- lifecycle ---------------------------------------------------------------

    @property
    def isolation(self) -> Isolation:
        with self._lock:
            self._ensure_started()
            assert self._isolation is not None
            return self._isolation

    def start(self) -> Isolation:
        """Start the zygote now rather than at the first run; IsolationMissing if refused."""
        return self.isolation

    @property
    def insecure_note(self) -> str | None:
        """None when every protection is in place; else a warning for every reason."""
        missing = _missing(self.isolation)
        if not missing:
            return None
        return (f"INSECURE: graded with --insecure, without {', '.join(missing)} isolation; "
                "the submission could read or change what the grader can")

    @property
    def zygote_pid(self) -> int:
        """Process id of the zygote (started if needed); its children run the submissions."""
        with self._lock:
            self._ensure_started()
            assert self._process is not None
            return self._process.pid

    def _ensure_started(self) -> None:
        if self._process is not None and self._owner_pid == os.getpid() \
                and self._process.poll() is None:
            return
        if self._owner_pid == os.getpid():
            self._stop()
        else:  # a fresh object, or inherited through fork: the zygote belongs to another process
            self._process = self._sock = self._host_dir = None
        self._owner_pid = os.getpid()
        self._host_dir = tempfile.mkdtemp(prefix="coursekit-sandbox-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        # Matplotlib's font cache lives under HOME; without it every zygote rebuilds it.
        for name in ("HOME", "MPLCONFIGDIR"):
            if name in os.environ:
                env[name] = os.environ[name]
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", child.__file__, self._host_dir, json.dumps(self._config),
                 str(theirs.fileno())],
                pass_fds=[theirs.fileno()], env=env, cwd="/", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self._sock = ours
        ours.settimeout(120)
        try:
            hello = json.loads(ours.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as exc:
            self._stop()
            raise SandboxError(f"the sandbox zygote did not start: {exc}") from exc
        if "isolation" not in hello:
            self._stop()
            raise SandboxError(hello.get("fatal", "the sandbox zygote exited during start-up; "
                                                  "its error is on stderr"))
        iso = hello["isolation"]
        isolation = Isolation(iso["user"], iso["filesystem"], iso["network"], iso["ipc"],
                              iso["seccomp"], tuple(iso["notes"]))
        if _missing(isolation) and not self.insecure:
            self._stop()
            raise IsolationMissing(_refusal(isolation), _missing(isolation))
        self._isolation = isolation

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)  # it exits when it sees the socket closed
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._host_dir is not None:
            _remove_quietly(self._host_dir)  # normally the zygote has removed it; not if killed
            self._host_dir = None

    def close(self) -> None:
        with self._lock:
            if self._owner_pid == os.getpid():
                self._stop()

    def __getstate__(self) -> None:
        raise TypeError("a Sandbox owns a local process and cannot be sent to another process; "
                        "create one inside each worker instead")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- running -----------------------------------------------------------------

    def run(self, code: str | Sequence[str], calls: Sequence[Call], *,
            workdir_files: Path | None, limits: Limits = Limits()) -> SandboxResult:
        """Execute `code` in a fresh sandbox, then call each function; see the module doc.

        `code` may be a list of parts executed one after another like notebook
        cells: an exception in one part is recorded in `code_errors` and the
        next part still runs.
        """
        parts = [code] if isinstance(code, str) else list(code)
        try:
            encoded_calls = [[c.function, json.dumps(list(c.args))] for c in calls]
        except TypeError as exc:
            raise ValueError(f"Call arguments must be JSON-able (lists, numbers, strings): {exc}"
                             ) from exc
        payload = json.dumps({"code": parts, "calls": encoded_calls}).encode()
        release = str(Path(workdir_files).resolve()) if workdir_files is not None else None
        if release is not None and not os.path.isdir(release):
            raise ValueError(f"workdir_files must be a directory (the release folder): {release}")
        request = json.dumps({"release": release, "limits": dataclasses.asdict(limits)}).encode()
        with self._lock:
            # If the zygote died (killed by an operator, say), start a new one and try once
            # more; a second death fails this run, not the batch.
            for _attempt in (1, 2):
                self._ensure_started()
                try:
                    status, fds = self._exchange(request, payload, limits)
                    break
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    self._stop()
            else:
                status, fds = {"error": "the sandbox zygote died twice during this run"}, []
        try:
            return _collect(calls, status, fds, limits)
        finally:
            for fd in fds:
                os.close(fd)

    def _exchange(self, request: bytes, payload: bytes, limits: Limits) -> tuple[dict, list[int]]:
        assert self._sock is not None
        input_fd = os.memfd_create("coursekit-input", os.MFD_CLOEXEC)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(input_fd, view):]
            os.lseek(input_fd, 0, os.SEEK_SET)
            socket.send_fds(self._sock, [request], [input_fd])
        finally:
            os.close(input_fd)
        self._sock.settimeout(limits.wall_seconds + _SUPERVISOR_GRACE_SECONDS)
        try:
            message, fds, _, _ = socket.recv_fds(self._sock, 1 << 20, 2)
        except TimeoutError:
            self._stop()
            return {"error": "the sandbox supervisor did not answer in time"}, []
        if not message:
            raise EOFError
        status = json.loads(message)
        if "error" in status:
            sys.stderr.write(status.get("trace", ""))
        return status, fds


def scratch_folder(prefix: str) -> Path:
    """A new private folder in the system temporary folder, removed when this process exits.

    multiprocessing's finalizers run at a normal exit and when a pool's worker process ends
    (atexit does not run there), and only in the process that made the folder, not in its
    forked children.  A process killed outright leaves it behind.
    """
    folder = tempfile.mkdtemp(prefix=prefix)
    multiprocessing.util.Finalize(None, _remove_quietly, args=(folder,), exitpriority=0)
    return Path(folder)


def _remove_quietly(path: str) -> None:
    try:
        child.remove_tree(path)
    except OSError:
        pass  # nothing to do about it on the way out


def _collect(calls: Sequence[Call], status: dict, fds: list[int], limits: Limits
             ) -> SandboxResult:
    if "error" in status:
        return SandboxResult([CallResult(c.function, "not_run") for c in calls],
                             f"sandbox failure (not the submission's fault): {status['error']}",
                             "")
    output_fd, result_fd = fds
    output = _read_capped(output_fd, limits.output_bytes).decode("utf-8", errors="replace")
    reason = _process_reason(status, limits, output)
    raw_result = _read_capped(result_fd, limits.output_bytes + 1)
    # Anything wrong with the result file voids all of it: a run is never half-trusted.
    loaded, code_errors, results = False, [], []
    if len(raw_result) > limits.output_bytes:
        reason = reason or f"the result is larger than the {_size(limits.output_bytes)} limit"
    else:
        try:
            loaded, code_errors, results = _read_results(raw_result, calls)
        except ValueError as exc:
            reason = reason or f"malformed result from the sandbox: {exc}"
    if loaded and len(results) == len(calls) and not status["finished"] \
            and not status["output_exceeded"]:
        # Every call reported, yet the child did not end the way the sandbox ends it: the
        # submission broke the exit path (a hang, or a closed signal pipe).  Fail closed.
        reason = (f"the submission interfered with the sandbox's exit after its last call "
                  f"({reason or 'no end signal'}); its results are discarded")
        results = [CallResult(c.function, "error", error=reason) for c in calls]
    if len(results) < len(calls):
        reason = reason or "the process ended before reporting every call"
        if loaded:  # the call in progress when the process died
            results.append(CallResult(calls[len(results)].function, "error",
                                      error=f"the sandbox stopped during this call: {reason}"))
        results.extend(CallResult(c.function, "not_run") for c in calls[len(results):])
    return SandboxResult(results, reason, output, code_errors)


def _read_results(data: bytes, calls: Sequence[Call]
                  ) -> tuple[bool, list[str], list[CallResult]]:
    """(code loaded?, code errors, one result per reported call); ValueError if malformed."""
    loaded, code_errors, results = False, [], []
    for record in _parse_records(data):
        if record["kind"] == "loaded" and not loaded:
            loaded, code_errors = True, record["errors"]
        elif record["kind"] == "call" and loaded and record["index"] == len(results) < len(calls):
            results.append(_call_result(calls[len(results)].function, record))
        else:
            raise ValueError("records out of order")
    return loaded, code_errors, results


def _call_result(function: str, record: dict) -> CallResult:
    status = record["status"]
    return CallResult(function, status,
                      value=record["value"] if status == "ok" else None,
                      error=record["error"],
                      args_after=record["args_after"])


def _read_capped(fd: int, cap: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    remaining = cap
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n:g} bytes"


def _process_reason(status: dict, limits: Limits, output: str) -> str | None:
    if status["timed_out"]:
        return f"wall-clock timeout after {limits.wall_seconds:g} s"
    if status["output_exceeded"]:
        return f"output limit exceeded: printed more than {_size(limits.output_bytes)}"
    if status["finished"]:
        return None  # the child signalled its end; the zygote then killed it
    sig = status["signal"]
    if not status["setup_ok"]:
        detail = f"killed by signal {sig}" if sig is not None else output[-500:]
        return f"sandbox failure (not the submission's fault): {detail}"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL
                                 and status["cpu_seconds"] >= limits.cpu_seconds):
        return f"CPU time limit ({limits.cpu_seconds} s) exceeded"
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else "?"
        hint = ""
        if sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT):
            hint = f" (perhaps the memory limit of {_size(limits.memory_bytes)})"
        return f"killed by signal {sig} ({name}){hint}"
    code = status["exit_status"]
    if code == child.REPORT_FAILED_EXIT:
        last = output.rstrip().rsplit("\n", 1)[-1]
        return f"the submission broke the sandbox's result reporting ({last[:300]})"
    if code != 0:
        return f"process exited with status {code} before finishing (os._exit?)"
    return None


# --------------------------------------------------------------------------- decoding


def _parse_records(data: bytes):
    """Yield the complete records of a result file; ValueError if anything is off."""
    view = memoryview(data)
    pos = 0
    header = child.RECORD_HEADER
    while pos + header.size <= len(view):
        magic, json_len, blob_len = header.unpack_from(view, pos)
        if magic != child.RECORD_MAGIC:
            raise ValueError("bad record marker")
        start = pos + header.size
        end = start + json_len + blob_len
        if end > len(view):
            return  # cut off mid-write when the process died: the reason says why
        try:
            record = json.loads(bytes(view[start:start + json_len]))
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"record is not valid JSON ({exc})") from None
        yield _check_record(record, view[start + json_len:end])
        pos = end


def _check_record(record: object, blob: memoryview) -> dict:
    if not isinstance(record, dict) or record.get("kind") not in ("loaded", "call"):
        raise ValueError("record without a known kind")
    if record["kind"] == "loaded":
        errors = record.get("errors")
        if not isinstance(errors, list) or not all(isinstance(e, str) for e in errors):
            raise ValueError("bad code error list")
        return {"kind": "loaded", "errors": [e[:child.ERROR_CHARS] for e in errors]}
    arrays = [_array(meta, blob) for meta in _as_list(record.get("arrays"), "arrays")]
    status = record.get("status")
    if status not in ("ok", "error", "missing"):
        raise ValueError(f"unknown call status {status!r}")
    index = record.get("index")
    if type(index) is not int:
        raise ValueError("call record without an index")
    error = record.get("error")
    if error is not None and not isinstance(error, str):
        raise ValueError("error message is not a string")
    decoder = _Decoder(arrays)
    return {"kind": "call", "index": index, "status": status,
            "value": decoder.decode(record.get("value")),
            "error": None if error is None else error[:child.ERROR_CHARS],
            "args_after": _as_list(decoder.decode(record.get("args_after")), "args_after",
                                   allow_none=True)}


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
        raise ValueError(f"array dtype {dtype_str!r} is not bool/int/float")
    if not (isinstance(shape, list) and len(shape) <= _MAX_ARRAY_DIMS
            and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError("bad array shape")
    if not (type(offset) is int and type(nbytes) is int and 0 <= offset
            and offset + nbytes <= len(blob)):
        raise ValueError("array bytes out of range")
    dtype = _dtype(dtype_str)
    count = math.prod(shape)
    if count * dtype.itemsize != nbytes:
        raise ValueError("array size does not match its shape")
    return np.frombuffer(blob[offset:offset + nbytes], dtype=dtype, count=count).reshape(shape)


@functools.lru_cache(maxsize=64)
def _dtype(dtype_str: str) -> np.dtype:
    return np.dtype(dtype_str)


class _Decoder:
    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        self.nodes = 0

    def decode(self, value: object, depth: int = 0) -> object:
        self.nodes += 1
        if depth > child.MAX_DEPTH or self.nodes > child.MAX_NODES:
            raise ValueError("value nested too deeply or too large")
        if value is None or type(value) in (bool, int, float, str):
            return value
        if type(value) is list:
            return [self.decode(v, depth + 1) for v in value]
        if type(value) is dict and len(value) == 1:
            (tag, inner), = value.items()
            if tag == "$dict" and type(inner) is list:
                out = {}
                for pair in inner:
                    if not (type(pair) is list and len(pair) == 2 and type(pair[0]) is str):
                        raise ValueError("bad dict entry")
                    out[pair[0]] = self.decode(pair[1], depth + 1)
                return out
            if tag in ("$nd", "$np") and type(inner) is int and 0 <= inner < len(self.arrays):
                array = self.arrays[inner].copy()  # writable, owning its memory
                return array if tag == "$nd" else array[()]
            if tag == "$opaque" and type(inner) is str:
                return Opaque(inner[:200])
        raise ValueError("unknown value encoding")
