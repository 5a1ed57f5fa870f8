"""Run untrusted student code in a separate, locked-down process and get plain data back.

Runs in: the grader's process (a coursekit worker), as the user who runs coursekit.  It never
runs student code itself.  This is the package's public face (`Sandbox`, `Limits`, the plain
data of a run, and `Shell`, the cells' `get_ipython()` that replay shares with the child); its
private modules are the zygote and child (`_child`), the child's runner (`_runner`) and shell
(`_shell`), and the grader's side of the wire format (`_protocol`).  Nothing outside the
package imports those (pyproject.toml's import contracts check it).

Usage::

    with Sandbox() as box:               # one pre-warmed zygote; one per worker for parallelism
        result = box.run(code, [Call("initialize_parameters_he", ([2, 4, 1],))],
                         workdir_files=Path("release/initialization"))

How it works (threat model and limits: SECURITY.md).  A :class:`Sandbox` starts a
zygote (coursekit/sandbox/_child.py) that imports NumPy and Matplotlib once and
moves itself into its own mount, network and IPC namespaces with a read-only
chroot.  For each run the zygote forks a child, which takes a fresh uid, sets
its resource limits, and runs the steps it receives one at a time over a
socket (coursekit/sandbox/_runner.py): notebook cells, planned calls, test cells.  It
answers each with a record of JSON plus raw array bytes; this process, never
the child, turns them back into Python values and refuses anything that is not
plain data, oversized or malformed (coursekit/sandbox/_protocol.py has the format).
A machine that does not allow every one of these protections is refused
(`IsolationMissing`, naming what is missing and what to do) unless the caller opts
in with ``Sandbox(insecure=True)``.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from coursekit.config import DEFAULT_PRELOAD, Limits
from coursekit.sandbox import _child as child
from coursekit.sandbox import _protocol as protocol
from coursekit.sandbox._protocol import (
    MAX_DEPTH,
    Call,
    CallResult,
    Cell,
    Failure,
    Opaque,
    SandboxResult,
    Step,
    Test,
    TestResult,
    clean_text,
)
from coursekit.sandbox._shell import Shell

__all__ = ["MAX_DEPTH", "Call", "CallResult", "Cell", "Failure", "Isolation", "IsolationMissing", "Limits", "Opaque",
           "Sandbox", "SandboxResult", "SandboxError", "Shell", "Step", "Test", "TestResult", "clean_text",
           "scratch_folder"]

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


def configuration_paths() -> list[str]:
    """Folders a submission must not read although the sandbox binds what holds them: every
    folder Jupyter and nbgrader read configuration from (``jupyter --paths``: the grader's
    JUPYTER_CONFIG_DIR and JUPYTER_CONFIG_PATH, ~/.jupyter, {prefix}/etc/jupyter,
    /usr/local/etc/jupyter, /etc/jupyter), where a site-wide ``nbgrader_config.py`` keeps the
    gradebook's ``db_url`` with its password, and the ``etc/`` of each Python installation and of
    /usr/local (JupyterHub's configuration lives there).  The zygote lays an empty read-only
    folder over each one that is visible in its chroot (`_child.Zygote._hide`)."""
    from jupyter_core.paths import ENV_CONFIG_PATH, SYSTEM_CONFIG_PATH, jupyter_config_path

    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = [*jupyter_config_path(), *ENV_CONFIG_PATH, *SYSTEM_CONFIG_PATH,
             *(os.path.join(prefix, "etc", "jupyter") for prefix in prefixes),
             *(os.path.join(prefix, "etc") for prefix in prefixes), "/usr/local/etc", "/usr/etc"]
    return sorted({os.path.abspath(p) for p in paths} | {os.path.realpath(p) for p in paths})


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
                        "readonly_paths": [str(p) for p in readonly_paths],
                        "hidden_paths": configuration_paths()}
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
        cells ("part 1", ...): an exception in one part is recorded in `code_errors`
        and the next part still runs.
        """
        parts = [code] if isinstance(code, str) else list(code)
        steps = [Cell(f"part {i}", part) for i, part in enumerate(parts, 1)]
        return self.run_steps([*steps, *calls], workdir_files=workdir_files, limits=limits)

    def run_steps(self, steps: Sequence[Step], *, workdir_files: Path | None,
                  limits: Limits = Limits()) -> SandboxResult:
        """Run notebook cells, calls and test cells in order in one fresh sandbox
        (coursekit/sandbox/_protocol.py): the child receives one call or test at a time.
        `limits.cell_seconds` limits each step (as nbgrader's per-cell timeout): that step
        fails and the next one runs; `limits.wall_seconds` the run.  `workdir_files` is read at its first run
        in this sandbox and kept by its zygote (coursekit/sandbox/_child.py, `_copy_release`):
        a release folder does not change while it is graded, and later changes are not seen."""
        for step in steps:
            if isinstance(step, Call):
                try:
                    json.dumps(list(step.args))
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"Call arguments must be JSON-able (lists, numbers, strings): {exc}"
                                     ) from exc
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
                    status, fds, data, problem = self._exchange(request, steps, limits)
                    break
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    self._stop()
            else:
                status, fds, data, problem = {"error": "the sandbox zygote died twice during this run"}, [], b"", None
        try:
            return _collect(steps, status, fds, data, problem, limits)
        finally:
            for fd in fds:
                os.close(fd)

    def _exchange(self, request: bytes, steps: Sequence[Step], limits: Limits
                  ) -> tuple[dict, list[int], bytes, str | None]:
        assert self._sock is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                socket.send_fds(self._sock, [request], [theirs.fileno()])
            finally:
                theirs.close()
            # The zygote kills the child at the deadline and then closes its copy of the
            # channel, so reading ends by then; the watchdog's grace covers a stuck zygote.
            ours.settimeout(limits.watchdog_seconds)
            try:
                data, problem = protocol.feed(ours, steps, limits.output_bytes)
            except TimeoutError:
                data, problem = b"", None
        finally:
            ours.close()
        self._sock.settimeout(limits.watchdog_seconds)
        try:
            message, fds, _, _ = socket.recv_fds(self._sock, 1 << 20, 1)  # the output file
        except TimeoutError:
            self._stop()
            return {"error": "the sandbox supervisor did not answer in time"}, [], b"", None
        if not message:
            raise EOFError
        status = json.loads(message)
        if "error" in status:
            sys.stderr.write(status.get("trace", ""))
        return status, fds, data, problem


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


def _collect(steps: Sequence[Step], status: dict, fds: list[int], data: bytes, problem: str | None,
             limits: Limits) -> SandboxResult:
    if "error" in status:
        return protocol.results(steps, b"", f"sandbox failure (not the submission's fault): {status['error']}", "",
                                void=True, failure=Failure.GRADER)
    output_fd = fds[0]
    output = _read_capped(output_fd, limits.output_bytes).decode("utf-8", errors="replace")
    if status["output_exceeded"]:  # the zygote dropped the rest; the run went on
        output += f"\n... (output cut by coursekit: more than {_size(limits.output_bytes)} was printed)\n"
    if problem == "too large":
        # The records that arrived whole stand, as if the child had died while sending the next
        # one: that step (named in the reason) fails, later ones did not run.
        return protocol.results(steps, data, f"the result is larger than the {_size(limits.output_bytes)} "
                                f"limit{_sent_by(steps, data)}", output, failure=Failure.STUDENT)
    if problem:
        # The grader stopped reading at a forged record, so the child's own end (often a
        # broken pipe) says nothing: the problem is the reason, and it voids the run.
        return protocol.results(steps, b"", f"malformed result from the sandbox: {problem}", output, void=True,
                                failure=Failure.FORGED)
    result = protocol.results(steps, data, _process_reason(status, limits, output), output)
    if result.completed == len(steps) and not status["finished"]:
        # Every step reported, yet the child did not end the way the sandbox ends it: the
        # submission broke the exit path (a hang, or a closed signal pipe).  Fail closed.
        reason = (f"the submission interfered with the sandbox's exit after its last call "
                  f"({result.reason or 'no end signal'}); its results are discarded")
        void = protocol.results(steps, b"", reason, output, void=True, failure=Failure.STUDENT)
        void.calls = [CallResult(c.function, "error", error=reason) for c in void.calls]
        return void
    return result


def _sent_by(steps: Sequence[Step], data: bytes) -> str:
    """' (sent by <the step whose record did not fit>)', or '' if the records do not say."""
    whole = protocol.results(steps, data, None, "").completed
    if whole >= len(steps):
        return ""
    step = steps[whole]
    return f" (sent by {f'the call of {step.function}' if isinstance(step, Call) else step.label})"


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


