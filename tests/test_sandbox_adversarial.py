"""The sandbox against hostile submissions: real processes, no mocks.

Every attack must leave the batch able to go on (the same Sandbox runs the next
submission) and must come back as an honest SandboxResult: a readable reason,
and no value that a grader could mistake for a correct answer.  Expected values
are computed here with NumPy directly, never by the sandbox.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from coursekit.gradebook import lock_name
from coursekit.sandbox import Call, Failure, Limits, Opaque, Sandbox, SandboxResult
from coursekit.sandbox._child import SETUP_FAILED_EXIT, UID_BASE
from tests.helpers import (
    ASSIGNMENT,
    MASTER,
    REPOSITORY,
    copy_course,
    coursekit,
    nbgrader_env,
    release_notebook,
    run_coursekit,
    submit,
)

# The files a run's working directory starts with, as a submission's release folder would hold them
# (any folder does: the fixture assignment's, whose helper module is beside its notebook).
RELEASE_FOLDER = MASTER.parent
# What a NumPy and Matplotlib course's graders preload (the lesson's list, without its own modules).
PRELOAD = ("numpy", "numpy.random", "numpy.linalg", "numpy.testing", "matplotlib", "matplotlib.pyplot", "h5py")
SECRET = "s3cr3t-hidden-test-answer-4242"
QUICK = Limits(wall_seconds=5, cpu_seconds=3)

HE = """
import numpy as np
def initialize_parameters_he(layers_dims):
    np.random.seed(3)
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = (np.random.randn(layers_dims[l], layers_dims[l - 1])
                                    * np.sqrt(2 / layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters
"""


def expected_he(dims: list[int]) -> dict[str, np.ndarray]:
    """The right answer, computed in the test process with NumPy's seeded generator."""
    rng = np.random.RandomState(3)
    out = {}
    for layer in range(1, len(dims)):
        out[f"W{layer}"] = rng.randn(dims[layer], dims[layer - 1]) * np.sqrt(2 / dims[layer - 1])
        out[f"b{layer}"] = np.zeros((dims[layer], 1))
    return out


@pytest.fixture(scope="module")
def box():
    """A sandbox as a course's graders start it: preloading what its nbgrader_config.py lists."""
    with Sandbox(preload=PRELOAD) as sandbox:
        yield sandbox


def run(box: Sandbox, code: str | list[str], *calls: Call, limits: Limits = QUICK
        ) -> SandboxResult:
    """Run code parts (dedented, so tests can indent them) with the course's release files."""
    parts = [code] if isinstance(code, str) else code
    return box.run([textwrap.dedent(part) for part in parts], list(calls), workdir_files=RELEASE_FOLDER,
                   limits=limits)


def assert_batch_goes_on(box: Sandbox) -> None:
    """After an attack, the same sandbox still grades an honest submission correctly."""
    result = run(box, HE, Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason is None and result.failure is None, result.reason
    value = result.calls[0].value
    assert set(value) == {"W1", "b1", "W2", "b2"}
    for key, array in expected_he([2, 4, 1]).items():
        np.testing.assert_array_equal(value[key], array)


def processes_of(uid: int) -> list[int]:
    """Pids of live (not zombie) processes running under `uid` (each sandbox run has its own)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if state != "Z":
                pids.append(int(entry))
    return pids


def requires_isolation(box: Sandbox, what: str) -> None:
    if not getattr(box.isolation, what):
        pytest.skip(f"this machine does not allow {what} isolation: {box.isolation.notes}")


# --------------------------------------------------------------------------- honest code


def test_a_correct_function_returns_exactly_the_right_arrays(box):
    result = run(box, HE, Call("initialize_parameters_he", ([2, 4, 1],)),
                 Call("initialize_parameters_he", ([3, 2, 2, 1],)))
    assert result.reason is None
    for call, dims in zip(result.calls, ([2, 4, 1], [3, 2, 2, 1])):
        assert call.status == "ok" and call.error is None
        assert call.args_after == [dims]
        expected = expected_he(dims)
        assert list(call.value) == list(expected)
        for key, array in expected.items():
            assert type(call.value[key]) is np.ndarray
            assert call.value[key].dtype == np.float64
            np.testing.assert_array_equal(call.value[key], array)
    # The first draw of NumPy's generator seeded with 3, times sqrt(2 / 2).
    assert result.calls[0].value["W1"][0, 0] == pytest.approx(1.78862847)


def test_plain_values_keep_their_type_and_dtype(box):
    result = run(box, """
        import numpy as np
        def values():
            return {"i": 7, "f": 0.5, "nan": float("nan"), "s": "text", "none": None,
                    "flag": True, "tuple": (1, 2), "i32": np.arange(3, dtype=np.int32),
                    "mask": np.array([True, False]), "f32": np.float32(1.5),
                    "empty": np.zeros((0, 3)), "scalar": np.float64(2.25),
                    "big": 10 ** 5000, "true_int": 2 ** 64}
        """, Call("values"))
    value = result.calls[0].value
    assert value["i"] == 7 and type(value["i"]) is int
    assert value["f"] == 0.5 and np.isnan(value["nan"])
    assert value["s"] == "text" and value["none"] is None and value["flag"] is True
    assert value["tuple"] == (1, 2) and type(value["tuple"]) is tuple  # containers keep their type
    assert value["i32"].dtype == np.int32 and value["i32"].tolist() == [0, 1, 2]
    assert value["mask"].dtype == np.bool_ and value["mask"].tolist() == [True, False]
    assert type(value["f32"]) is np.float32 and value["f32"] == 1.5
    assert value["empty"].shape == (0, 3)
    assert type(value["scalar"]) is np.float64 and value["scalar"] == 2.25
    assert value["big"] == Opaque("int (too large)") and value["true_int"] == 18446744073709551616


def test_an_exception_in_a_call_is_an_error_with_its_message_and_the_next_call_runs(box):
    result = run(box, [HE, """
        def initialize_parameters_zeros(layers_dims):
            raise NotImplementedError()
        def initialize_parameters_random(layers_dims):
            return layers_dims[10]
        """], Call("initialize_parameters_zeros", ([2, 1],)),
        Call("initialize_parameters_random", ([2, 1],)),
        Call("initialize_parameters_he", ([2, 1],)))
    assert result.reason is None
    zeros, random, he = result.calls
    assert (zeros.status, zeros.error, zeros.value) == ("error", "NotImplementedError: ", None)
    assert (random.status, random.error) == ("error", "IndexError: list index out of range")
    assert he.status == "ok"


def test_limits_refuse_values_that_cannot_work():
    with pytest.raises(ValueError, match="cpu_seconds must be a positive whole number"):
        Limits(cpu_seconds=2.5)
    with pytest.raises(ValueError, match="memory_bytes must be at least 512 MiB"):
        Limits(memory_bytes=100 << 20)
    with pytest.raises(ValueError, match="allow_fork must be True or False"):
        Limits(allow_fork=1)


def test_a_missing_function_is_reported_missing(box):
    result = run(box, HE, Call("initialize_parameters_zeros", ([2, 1],)))
    assert result.reason is None
    assert result.calls[0].status == "missing" and result.calls[0].value is None


def test_a_broken_code_part_is_reported_and_later_parts_still_run(box):
    result = box.run(["def f(:\n    pass", "x = 1 / 0", HE],
                     [Call("initialize_parameters_he", ([2, 1],))],
                     workdir_files=RELEASE_FOLDER, limits=QUICK)
    assert result.reason is None
    assert result.code_errors[0].startswith("part 1: SyntaxError")
    assert result.code_errors[1] == "part 2: ZeroDivisionError: division by zero"
    assert result.calls[0].status == "ok"


def test_each_call_gets_fresh_arguments_and_mutation_is_visible(box):
    result = run(box, """
        def grab(dims):
            dims.append(99)
            return len(dims)
        """, Call("grab", ([1, 2],)), Call("grab", ([1, 2],)))
    assert [c.value for c in result.calls] == [3, 3]
    assert [c.args_after for c in result.calls] == [[[1, 2, 99]], [[1, 2, 99]]]


def test_the_working_directory_is_fresh_and_holds_only_the_release_files(box):
    code = """
        import os
        def look():
            found = sorted(os.path.relpath(os.path.join(d, n), ".")
                           for d, _, names in os.walk(".") for n in names)
            open("left_behind.txt", "w").write("from an earlier student")
            return found
        """
    first, second = (run(box, code, Call("look")).calls[0].value for _ in range(2))
    expected = sorted(str(p.relative_to(RELEASE_FOLDER)) for p in RELEASE_FOLDER.rglob("*") if p.is_file())
    assert first == second == expected


def test_unseeded_numpy_randomness_differs_between_runs(box):
    code = "import numpy as np\ndef draw():\n    return np.random.rand(4)\n"
    draws = [run(box, code, Call("draw")).calls[0].value.tolist() for _ in range(3)]
    assert draws[0] != draws[1] != draws[2] != draws[0]


# --------------------------------------------------------------------------- cheating values


def test_monkeypatching_numpy_and_builtins_stays_inside_the_sandbox(box):
    original_allclose, original_assert = np.allclose, np.testing.assert_allclose
    result = run(box, """
        import builtins, numpy as np
        np.allclose = lambda *a, **k: True
        np.array_equal = lambda *a, **k: True
        np.testing.assert_allclose = lambda *a, **k: None
        builtins.isinstance = lambda *a: True
        builtins.AssertionError = type("Never", (Exception,), {})
        def initialize_parameters_he(layers_dims):
            return {"W1": np.ones((4, 2)), "b1": np.ones((4, 1)),
                    "W2": np.ones((1, 4)), "b2": np.ones((1, 1))}
        """, Call("initialize_parameters_he", ([2, 4, 1],)))
    assert np.allclose is original_allclose and np.testing.assert_allclose is original_assert
    value = result.calls[0].value
    expected = expected_he([2, 4, 1])
    assert not np.allclose(value["W1"], expected["W1"])
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(value["W1"], expected["W1"])
    assert_batch_goes_on(box)


def test_an_object_equal_to_everything_comes_back_opaque(box):
    result = run(box, """
        class Anything:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            __hash__ = object.__hash__
        def initialize_parameters_he(layers_dims):
            return Anything()
        def nested(layers_dims):
            return {"W1": Anything(), "b1": 3}
        """, Call("initialize_parameters_he", ([2, 4, 1],)), Call("nested", ([2, 4, 1],)))
    whole, nested = result.calls
    assert whole.value == Opaque("Anything")
    assert whole.value != expected_he([2, 4, 1])
    assert nested.value == {"W1": Opaque("Anything"), "b1": 3}


def test_an_ndarray_subclass_that_lies_about_equality_comes_back_as_a_plain_array(box):
    result = run(box, """
        import numpy as np
        class Liar(np.ndarray):
            def __eq__(self, other): return np.ones(np.shape(other), dtype=bool)
            def __array_function__(self, func, types, args, kwargs): return True
            def __array_ufunc__(self, *args, **kwargs): return np.zeros(0)
        class Float(float):
            def __eq__(self, other): return True
        def initialize_parameters_he(layers_dims):
            return {"W1": np.zeros((4, 2)).view(Liar), "b1": Float(0.25)}
        """, Call("initialize_parameters_he", ([2, 4, 1],)))
    value = result.calls[0].value
    assert type(value["W1"]) is np.ndarray
    assert not np.allclose(value["W1"], expected_he([2, 4, 1])["W1"])
    assert type(value["b1"]) is float and value["b1"] == 0.25 and value["b1"] != 0.5


def test_forged_result_bytes_are_refused_not_unpickled(box):
    # A record claiming an object-dtype array (what a pickle would need): refused.
    result = run(box, """
        import json, os, struct
        head = json.dumps({"kind": "loaded", "errors": []}).encode()
        os.write(3, struct.pack("<2sII", b"CK", len(head), 0) + head)
        head = json.dumps({"kind": "call", "index": 0, "status": "ok", "value": {"$nd": 0},
                           "error": None, "args_after": None,
                           "arrays": [["|O8", [1], 0, 8]]}).encode()
        os.write(3, struct.pack("<2sII", b"CK", len(head), 8) + head + b"\\x80\\x04N." + b"\\0" * 4)
        os._exit(0)
        """, Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason.startswith("malformed result from the sandbox")
    assert result.failure is Failure.FORGED
    assert [c.status for c in result.calls] == ["not_run"]
    assert result.calls[0].value is None


def test_forged_records_void_the_whole_result_even_the_honest_calls(box):
    result = run(box, [HE, """
        import json, os, struct
        def forge(layers_dims):
            head = json.dumps({"kind": "call", "index": 5, "status": "ok", "value": 1,
                               "error": None, "args_after": None, "arrays": []}).encode()
            os.write(3, struct.pack("<2sII", b"CK", len(head), 0) + head)
            return 0
        """], Call("initialize_parameters_he", ([2, 4, 1],)), Call("forge", ([1],)))
    assert result.reason == "malformed result from the sandbox: records out of order"
    assert result.failure is Failure.FORGED
    assert [(c.status, c.value) for c in result.calls] == [("not_run", None)] * 2


def test_garbage_and_oversized_results_are_a_failed_run_with_a_reason(box):
    garbage = run(box, "import os\nos.write(3, b'not a record')\n", Call("f"))
    assert garbage.reason.startswith("malformed result from the sandbox")
    huge = run(box, "import os, struct\nos.write(3, struct.pack('<2sII', b'CK', 10 << 20, 0))\n", Call("f"))
    assert huge.reason == "the result is larger than the 1 MiB limit (sent by part 1)"
    assert (garbage.failure, huge.failure) == (Failure.FORGED, Failure.STUDENT)
    assert [c.status for c in garbage.calls + huge.calls] == ["not_run", "not_run"]
    assert_batch_goes_on(box)


# --------------------------------------------------------------------------- killing the process


def test_os_exit_in_a_call_stops_the_run_with_a_reason(box):
    result = run(box, [HE, """
        import os
        def quit_now(layers_dims):
            os._exit(3)
        """], Call("initialize_parameters_he", ([2, 4, 1],)), Call("quit_now", ([1],)),
        Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason == "process exited with status 3 before finishing (os._exit?)"
    assert [c.status for c in result.calls] == ["ok", "error", "not_run"]
    assert result.calls[1].error == f"the sandbox stopped during this call: {result.reason}"
    assert_batch_goes_on(box)


def test_a_submission_cannot_pass_its_exit_off_as_a_sandbox_failure(box):
    result = run(box, f"import os\nos._exit({SETUP_FAILED_EXIT})\n",
                 Call("initialize_parameters_he", ([2],)))
    assert result.reason == (f"process exited with status {SETUP_FAILED_EXIT} before finishing"
                             " (os._exit?)")


def test_sys_exit_in_a_call_is_an_error_like_in_a_notebook_cell(box):
    result = run(box, [HE, """
        import sys
        def quit_now(layers_dims):
            sys.exit(3)
        """], Call("quit_now", ([1],)), Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason is None
    assert (result.calls[0].status, result.calls[0].error) == ("error", "SystemExit: 3")
    assert result.calls[1].status == "ok"


def test_killing_itself_with_sigkill_is_reported(box):
    result = run(box, """
        import os
        os.kill(os.getpid(), 9)
        """, Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason == "killed by signal 9 (SIGKILL)"
    assert [c.status for c in result.calls] == ["not_run"]
    assert_batch_goes_on(box)


def test_an_endless_sleep_hits_the_wall_clock_timeout(box):
    result = run(box, [HE, """
        import time
        def initialize_parameters_zeros(layers_dims):
            time.sleep(1000)
        """], Call("initialize_parameters_he", ([2, 1],)), Call("initialize_parameters_zeros", ([2],)),
        limits=Limits(wall_seconds=1.5))
    assert result.reason == "wall-clock timeout after 1.5 s"
    assert result.failure is Failure.STUDENT
    assert [c.status for c in result.calls] == ["ok", "error"]
    assert_batch_goes_on(box)


def test_an_infinite_loop_hits_the_cpu_limit(box):
    result = run(box, """
        def initialize_parameters_zeros(layers_dims):
            while True:
                pass
        """, Call("initialize_parameters_zeros", ([2],)), limits=Limits(cpu_seconds=1))
    assert result.reason == "CPU time limit (1 s) exceeded"
    assert result.calls[0].status == "error"
    assert_batch_goes_on(box)


WHOAMI = "import os\ndef whoami():\n    return os.getuid()\n"
FORK_BOMB = """
    import os
    def initialize_parameters_zeros(layers_dims):
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """


def test_by_default_a_submission_cannot_start_processes_but_can_use_threads(box):
    requires_isolation(box, "seccomp")
    result = run(box, """
        import os, subprocess, threading
        def spawn():
            try:
                subprocess.run(["true"])
            except OSError as exc:
                return type(exc).__name__
        def thread():
            seen = []
            worker = threading.Thread(target=seen.append, args=(1,))
            worker.start()
            worker.join()
            return seen
        """, Call("spawn"), Call("thread"))
    assert [c.value for c in result.calls] == ["PermissionError", [1]]


def test_a_fork_bomb_is_refused_by_default(box):
    requires_isolation(box, "seccomp")
    result = run(box, [WHOAMI, FORK_BOMB], Call("whoami"),
                 Call("initialize_parameters_zeros", ([2],)), limits=Limits(wall_seconds=1))
    assert result.reason == "wall-clock timeout after 1 s"  # it spins, alone
    assert result.calls[1].status == "error"
    assert processes_of(result.calls[0].value) == []
    assert_batch_goes_on(box)


def test_a_fork_bomb_allowed_to_fork_is_contained_and_leaves_no_process_behind(box):
    requires_isolation(box, "user")
    result = run(box, [WHOAMI, FORK_BOMB], Call("whoami"),
                 Call("initialize_parameters_zeros", ([2],)),
                 limits=Limits(wall_seconds=2, allow_fork=True, max_processes=8))
    assert result.reason in ("wall-clock timeout after 2 s", "CPU time limit (10 s) exceeded")
    assert result.calls[1].status == "error"
    uid = result.calls[0].value
    assert uid >= UID_BASE and processes_of(uid) == []
    assert_batch_goes_on(box)


def test_grandchildren_that_detach_are_killed_when_the_run_ends(box):
    result = run(box, """
        import os, time
        def spawn():
            pids = []
            for _ in range(3):
                r, w = os.pipe()
                if os.fork() == 0:          # child: detach, fork again, and hide
                    os.setsid()
                    if os.fork() == 0:
                        os.write(w, str(os.getpid()).encode())
                        os.close(w)
                        for fd in range(64):
                            try: os.close(fd)
                            except OSError: pass
                        time.sleep(1000)
                    os._exit(0)
                os.close(w)
                pids.append(int(os.read(r, 20)))
            return pids
        """, Call("spawn"), limits=Limits(allow_fork=True))
    assert result.reason is None
    pids = result.calls[0].value
    assert len(pids) == 3
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# --------------------------------------------------------------------------- resources


def test_allocating_30_gb_is_a_memory_error_mentioning_the_limit(box):
    result = run(box, [HE, """
        import numpy as np
        def initialize_parameters_zeros(layers_dims):
            return np.ones(30 * 2**30 // 8)
        def grow(layers_dims):
            chunks = []
            while True:
                chunks.append(np.zeros(100 << 17))  # 100 MiB each, not touched
        """], Call("initialize_parameters_zeros", ([2],)), Call("grow", ([2],)),
        Call("initialize_parameters_he", ([2, 1],)))
    zeros, grow, he = result.calls
    assert zeros.status == grow.status == "error"
    assert zeros.error.startswith("MemoryError") and "memory limit is 2 GiB" in zeros.error
    assert grow.error.startswith("MemoryError")
    assert he.status == "ok"


def test_printing_without_end_only_runs_out_of_time_and_keeps_a_capped_part(box):
    result = run(box, """
        import sys
        def initialize_parameters_zeros(layers_dims):
            while True:
                sys.stdout.write("x" * (1 << 20))
        """, Call("initialize_parameters_zeros", ([2],)))
    # Writing is CPU work, and the CPU limit equals the wall-clock one: on a quiet machine the
    # CPU limit is met first, on a loaded one the clock.  Either way it ran out of time, not output.
    assert re.fullmatch(r"wall-clock timeout after 5 s|CPU time limit \(\d+ s\) exceeded", result.reason or ""), result.reason
    assert result.calls[0].status == "error"
    assert_batch_goes_on(box)


def test_printing_past_the_output_limit_is_cut_with_a_note_and_costs_nothing(box):
    """Output written around the capture (straight to the file descriptors) is cut at
    output_bytes; the run goes on and every call keeps its value."""
    result = run(box, [HE, """
        import os
        def shout(layers_dims):
            for _ in range(3):
                os.write(1, "\u00fc".encode() * (1 << 20))
            return 7
        """], Call("shout", ([2],)), Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason is None
    assert [c.status for c in result.calls] == ["ok", "ok"] and result.calls[0].value == 7
    assert result.output.endswith("... (output cut by coursekit: more than 1 MiB was printed)\n")
    assert len(result.output.encode()) <= (1 << 20) + 200


def test_many_calls_that_print_non_ascii_text_keep_their_values_and_a_cut_of_their_prints(box):
    """Each call prints 30 000 non-ASCII characters (each takes 6 bytes in a record): the kept
    prints share a budget of half the output limit, later ones are cut with a note, and no
    record is refused as too large."""
    calls = [Call("chatty", (i,)) for i in range(40)]
    result = run(box, """
        def chatty(i):
            print("\u00e9\u4e2d" * 15_000)
            return i
        """, *calls)
    assert result.reason is None
    assert [c.value for c in result.calls] == list(range(40))
    assert result.calls[0].stdout.startswith("\u00e9\u4e2d" * 9_000)
    assert result.calls[-1].stdout.endswith("... (output cut by coursekit)\n")


def test_a_file_larger_than_file_bytes_cannot_be_written(box):
    result = run(box, """
        def write():
            with open("big", "wb") as f:
                f.write(b"x" * (2 << 20))
        """, Call("write"), limits=Limits(file_bytes=1 << 20))
    assert result.reason is None
    assert result.calls[0].error == "OSError: [Errno 27] File too large"


def test_opening_too_many_files_fails_inside_the_call(box):
    result = run(box, """
        def hoard():
            return [open("/dev/null") for _ in range(100)]
        """, Call("hoard"), limits=Limits(open_files=32))
    assert result.calls[0].error == "OSError: [Errno 24] Too many open files: '/dev/null'"


def test_filling_the_disk_stops_at_the_workspace_size(box):
    result = run(box, """
        def fill():
            written = 0
            for i in range(1000):
                with open(f"junk{i}", "wb") as f:
                    f.write(b"x" * (8 << 20))
                written += 8
            return written
        """, Call("fill"), limits=Limits(disk_bytes=32 << 20))
    assert result.calls[0].status == "error"
    assert "No space left on device" in result.calls[0].error
    assert_batch_goes_on(box)


# --------------------------------------------------------------------------- failing closed


def test_only_unix_and_internet_sockets_can_be_created(box):
    requires_isolation(box, "seccomp")
    result = run(box, """
        import socket
        def make(family, kind):
            try:
                socket.socket(family, kind).close()
                return "created"
            except OSError as exc:
                return exc.errno
        def pair():
            a, b = socket.socketpair()
            a.sendall(b"ok")
            return b.recv(2).decode()
        """, *(Call("make", (family, kind)) for family, kind in (
            (socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_STREAM),
            (socket.AF_INET6, socket.SOCK_DGRAM),
            (socket.AF_VSOCK, socket.SOCK_STREAM),  # reaches the VM's host: no namespace covers it
            (socket.AF_NETLINK, socket.SOCK_RAW), (socket.AF_PACKET, socket.SOCK_RAW),
            (socket.AF_ALG, socket.SOCK_SEQPACKET), (socket.AF_CAN, socket.SOCK_RAW))),
        Call("pair"))
    # EPERM is the filter's answer; a family the kernel lacks would give EAFNOSUPPORT (97).
    assert [c.value for c in result.calls] == ["created"] * 3 + [1] * 5 + ["ok"]


def test_memory_cannot_be_hoarded_in_memfds_outside_the_memory_limit(box):
    requires_isolation(box, "seccomp")
    # Pages written into a memfd are not address space: without the filter, 16 MiB memfds
    # handed over a socket and closed add up past RLIMIT_AS.
    result = run(box, """
        import os, socket
        def hoard():
            keep, give = socket.socketpair()
            held = 0
            for _ in range(48):  # 768 MiB, beyond the 512 MiB limit
                fd = os.memfd_create("hoard")
                os.write(fd, b"x" * (16 << 20))
                socket.send_fds(give, [b"."], [fd])
                os.close(fd)
                held += 16 << 20
            return held
        """, Call("hoard"), limits=Limits(memory_bytes=512 << 20, wall_seconds=5))
    assert result.calls[0].status == "error"
    assert result.calls[0].error == "PermissionError: [Errno 1] Operation not permitted"


def test_socket_buffers_cannot_be_raised_to_hoard_memory_outside_the_memory_limit(box):
    requires_isolation(box, "seccomp")
    # Queued socket data is not address space either: with SO_SNDBUF at its maximum, 32
    # socketpairs handed over a socket held about 280 MB; at the default size about 8 MB.
    result = run(box, """
        import socket
        def hoard():
            carrier, keep = socket.socketpair()
            held = 0
            while True:
                a, b = socket.socketpair()
                a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 20)
                a.setblocking(False)
                try:
                    while True:
                        held += a.send(b"x" * (1 << 16))
                except BlockingIOError:
                    pass
                try:
                    socket.send_fds(carrier, [b"."], [a.fileno(), b.fileno()])
                except OSError:  # the kernel's cap on descriptors in flight
                    return held
                a.close()
                b.close()
        """, Call("hoard"), limits=Limits(memory_bytes=512 << 20, wall_seconds=5))
    assert result.calls[0].status == "ok"
    assert result.calls[0].value < 32 << 20


def test_a_submission_that_replaces_its_exit_path_ends_at_once_and_keeps_its_results(box):
    result = run(box, [HE, """
        import os, sys, time
        class Stuck:
            def write(self, text): return len(text)
            def flush(self): time.sleep(1000)
        def hang_in_exit(frame, event, arg):
            if event == "c_call" and arg is os._exit:
                time.sleep(1000)
        os._exit = sys.exit = lambda *args: time.sleep(1000)
        sys.stdout = sys.stderr = Stuck()
        sys.setprofile(hang_in_exit)
        """], Call("initialize_parameters_he", ([2, 4, 1],)), limits=Limits(wall_seconds=3))
    assert result.reason is None  # not "wall-clock timeout after 3 s"
    np.testing.assert_array_equal(result.calls[0].value["W1"], expected_he([2, 4, 1])["W1"])


def test_a_submission_that_silences_the_end_signal_loses_its_results(box):
    result = run(box, [HE, "import os\nos.close(4)  # the pipe the child signals its end on\n"],
                 Call("initialize_parameters_he", ([2, 4, 1],)))
    assert result.reason.startswith("the submission interfered with the sandbox's exit after its "
                                    "last call")
    assert result.failure is Failure.STUDENT
    assert [(c.status, c.value) for c in result.calls] == [("error", None)]
    assert_batch_goes_on(box)


def test_a_submission_that_hangs_its_own_exit_is_stopped_by_the_timeout_without_its_results(box):
    result = run(box, [HE, """
        import sys, time
        def hang_before_the_end(frame, event, arg):  # the child flushes its streams, then ends
            if event == "c_call" and getattr(arg, "__name__", "") == "flush":
                time.sleep(1000)
        sys.setprofile(hang_before_the_end)
        """], Call("initialize_parameters_he", ([2, 4, 1],)), limits=Limits(wall_seconds=2))
    assert result.reason == ("the submission interfered with the sandbox's exit after its last "
                             "call (wall-clock timeout after 2 s); its results are discarded")
    assert [(c.status, c.value) for c in result.calls] == [("error", None)]


def test_a_1500_deep_directory_tree_is_removed_without_following_links(box, tmp_path):
    keep = tmp_path / "outside"
    keep.mkdir()
    (keep / "precious.txt").write_text("must survive the clean-up")
    zygote = box.zygote_pid
    result = run(box, """
        import os
        def dig(outside):
            os.symlink(outside, "link")  # the clean-up runs outside the chroot: never follow
            for depth in range(1500):
                os.mkdir("d")
                os.chdir("d")
                if depth % 500 == 0:
                    os.symlink(outside, "link")
                    open("file", "w").close()
            return depth + 1
        """, Call("dig", (str(keep),)))
    assert result.calls[0].value == 1500
    assert (keep / "precious.txt").read_text() == "must survive the clean-up"
    listing = run(box, "import os\ndef ls():\n    return sorted(os.listdir('.'))\n", Call("ls"))
    assert listing.calls[0].value == sorted(p.name for p in RELEASE_FOLDER.iterdir())
    assert box.zygote_pid == zygote  # the same zygote: its clean-up did not crash
    assert_batch_goes_on(box)


LOOK_FOR_THE_PREVIOUS_RUN = """
import gc, sys
def look():
    status_key, earlier_limit = "exit_" + "status", str(4321 / 1000)  # not in this code's text
    found = []
    frame = sys._getframe(1)  # the frames below this function: the sandbox's
    while frame is not None:
        for name, value in frame.f_locals.items():
            if status_key in repr(value) or earlier_limit in repr(value):
                found.append(f"{frame.f_code.co_name}: {name}")
        frame = frame.f_back
    found += [repr(o)[:200] for o in gc.get_objects() if isinstance(o, dict)
              and (status_key in o or str(o.get("wall_seconds")) == earlier_limit)]
    return found
"""


def test_the_next_child_finds_nothing_of_the_previous_run(box):
    earlier = run(box, "import os\ndef f():\n    os._exit(77)\n", Call("f"),
                  limits=Limits(wall_seconds=4.321))
    assert earlier.reason == "process exited with status 77 before finishing (os._exit?)"
    result = run(box, LOOK_FOR_THE_PREVIOUS_RUN, Call("look"))
    assert result.calls[0].value == []


def test_a_fresh_zygote_holds_its_preloaded_memory_in_huge_pages():
    """Forking then copies one page-table entry per 2 MB instead of 512 (collapse_into_huge_pages);
    that children still share none of each other's writes is the two tests above."""
    setting = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not setting.exists() or "[never]" in setting.read_text():
        pytest.skip("this kernel has transparent huge pages switched off")
    if tuple(int(n) for n in re.findall(r"\d+", os.uname().release)[:2]) < (6, 1):
        pytest.skip("MADV_COLLAPSE needs Linux 6.1 or later")
    with Sandbox(preload=PRELOAD) as fresh:
        rollup = Path(f"/proc/{fresh.zygote_pid}/smaps_rollup").read_text()
    huge = int(re.search(r"^AnonHugePages:\s+(\d+) kB", rollup, re.MULTILINE).group(1))
    # NumPy, Matplotlib and h5py leave about 50 MB of heap, 28-36 MB of it in whole 2 MB pages
    # (the zygote's own writes split some back as it serves runs); without the collapse none is
    # (THP "madvise", the usual setting).
    assert huge >= 16 * 1024, rollup


# --------------------------------------------------------------------------- release modules imported once

STAMP = """
import os
from pathlib import Path

IMPORTED_BY = os.getpid()
BESIDE = (Path(__file__).parent / "beside.txt").read_text()
HOME = os.environ["HOME"]
counter = [0]
"""


@pytest.fixture(scope="module")
def stamped(tmp_path_factory):
    """A sandbox preloading `stamp`, a module of its release folder that records where it was imported."""
    release = tmp_path_factory.mktemp("stamped-release")
    (release / "stamp.py").write_text(STAMP)
    (release / "beside.txt").write_text("read at import")
    with Sandbox(preload=["numpy", "stamp"]) as sandbox:
        yield sandbox, release


def run_stamped(stamped, code: str) -> object:
    box, release = stamped
    result = box.run(textwrap.dedent(code), [Call("f")], workdir_files=release, limits=QUICK)
    assert result.reason is None, result.reason
    return result.calls[0].value


def test_a_release_module_named_in_the_preload_is_imported_once_as_the_run_would_import_it(stamped):
    first = run_stamped(stamped, """
        import os, stamp
        def f():
            stamp.counter[0] += 1  # this run's copy only
            return [stamp.IMPORTED_BY != os.getpid(), stamp.__file__, stamp.BESIDE, stamp.HOME == os.getcwd()]
    """)
    assert first == [True, "/sandbox/work/stamp.py", "read at import", True]
    again = run_stamped(stamped, "import stamp\ndef f():\n    return stamp.counter[0]\n")
    assert again == 0


def test_a_run_that_rewrites_a_preloaded_module_first_imports_its_own_version(stamped):
    value = run_stamped(stamped, """
        import os
        with open("stamp.py", "a") as f:
            f.write("REWRITTEN = True\\n")
        import stamp
        def f():
            return [stamp.IMPORTED_BY == os.getpid(), stamp.REWRITTEN]
    """)
    assert value == [True, True]


def test_reloading_a_preloaded_module_runs_its_file_again(stamped):
    value = run_stamped(stamped, """
        import importlib, os, stamp
        def f():
            return importlib.reload(stamp).IMPORTED_BY == os.getpid()
    """)
    assert value is True


# --------------------------------------------------------------------------- what the code can see


@pytest.fixture()
def fake_course():
    """A course directory whose secrets are world-readable: only the sandbox hides them."""
    course = Path(tempfile.mkdtemp(prefix="coursekit-fake-course-"))
    try:
        course.chmod(0o755)
        (course / "source" / ASSIGNMENT).mkdir(parents=True)
        (course / "source" / ASSIGNMENT / "solution.py").write_text(SECRET)
        (course / "gradebook.db").write_text(SECRET)
        (course / "submitted" / "other-student").mkdir(parents=True)
        (course / "submitted" / "other-student" / "answer.py").write_text(SECRET)
        shutil.copytree(RELEASE_FOLDER, course / "release" / ASSIGNMENT)
        for path in course.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield course
    finally:
        shutil.rmtree(course)


READ_ANYTHING = """
import os
def read(path):
    try:
        with open(path) as f:
            return "READ: " + f.read()
    except Exception as exc:
        return type(exc).__name__
"""


def test_secrets_in_the_course_directory_are_out_of_reach(box, fake_course):
    requires_isolation(box, "filesystem")
    targets = [fake_course / "source" / ASSIGNMENT / "solution.py",
               fake_course / "gradebook.db",
               fake_course / "submitted" / "other-student" / "answer.py",
               "../../gradebook.db", "../../../gradebook.db",
               REPOSITORY / "gradebook.db", MASTER,
               "/etc/shadow", f"/proc/{os.getpid()}/environ"]
    result = box.run(READ_ANYTHING, [Call("read", (str(t),)) for t in targets],
                     workdir_files=fake_course / "release" / ASSIGNMENT, limits=QUICK)
    assert result.reason is None
    for target, call in zip(targets, result.calls):
        assert call.status == "ok"
        assert call.value in ("FileNotFoundError", "PermissionError"), (target, call.value)
    assert SECRET not in result.output


def test_the_course_directory_shows_nothing_but_the_python_environment(box):
    requires_isolation(box, "filesystem")
    result = run(box, """
        import os
        def ls(path):
            try:
                return sorted(os.listdir(path))
            except OSError as exc:
                return type(exc).__name__
        """, Call("ls", (str(REPOSITORY),)), Call("ls", ("/",)), Call("ls", ("/proc",)))
    course, root, proc = (c.value for c in result.calls)
    assert set(course) <= {".venv"}  # present only when the virtual environment lives there
    assert set(root) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "sbin", "usr",
                         "pycache", "sandbox",  # plus the top folders of the Python installation:
                         *(Path(p).parts[1] for p in (sys.prefix, sys.base_prefix)),
                         *(Path(p).resolve().parts[1] for p in (sys.prefix, sys.base_prefix))}
    assert proc == "FileNotFoundError"


def test_the_code_runs_as_an_unprivileged_user_with_a_scrubbed_environment(box, monkeypatch):
    requires_isolation(box, "user")
    monkeypatch.setenv("COURSEKIT_GRADEBOOK", f"postgresql://grader:{SECRET}@db/course")
    with Sandbox() as fresh:  # started after the secret entered the grader's environment
        result = fresh.run("""
import os
def who():
    return [os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), dict(os.environ)]
""", [Call("who")], workdir_files=RELEASE_FOLDER, limits=QUICK)
    uid, euid, gid, groups, environ = result.calls[0].value
    assert uid == euid == gid and uid >= UID_BASE and groups == []
    assert set(environ) <= {"PATH", "HOME", "TMPDIR", "LANG", "MPLBACKEND", "MPLCONFIGDIR",
                            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
    assert SECRET not in repr(environ)


def test_no_network_not_even_to_a_listening_socket_on_localhost(box):
    requires_isolation(box, "network")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        result = run(box, """
            import socket
            def connect(host, port):
                try:
                    socket.create_connection((host, port), timeout=2).sendall(b"answers?")
                    return "connected"
                except OSError as exc:
                    return str(exc)
            """, Call("connect", ("127.0.0.1", port)), Call("connect", ("1.1.1.1", 80)))
        with pytest.raises(TimeoutError):
            listener.accept()
    assert [c.value for c in result.calls] == ["[Errno 101] Network is unreachable"] * 2


def test_parallel_sandboxes_run_under_different_uids(box):
    requires_isolation(box, "user")
    code = "import os, time\ndef who():\n    time.sleep(0.3)\n    return os.getuid()\n"
    uids: list[int] = []
    with Sandbox() as other:
        threads = [threading.Thread(target=lambda b=b: uids.append(
            run(b, code, Call("who")).calls[0].value)) for b in (box, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(uids) == 2 and uids[0] != uids[1]


GRADER_KILLED_MID_RUN = """
import sys
from coursekit.sandbox import Call, Limits, Sandbox
box = Sandbox()
print(box.zygote_pid, box._host_dir, flush=True)  # the zygote's mount point, for the clean-up check
box.run("import time\\ndef f():\\n    time.sleep(600)\\n", [Call("f")], workdir_files=None,
        limits=Limits(wall_seconds=600, allow_fork=True))
"""


def test_when_the_grader_is_killed_mid_run_the_submission_dies_and_nothing_is_left():
    grader = subprocess.Popen([sys.executable, "-c", GRADER_KILLED_MID_RUN], cwd=REPOSITORY,
                              stdout=subprocess.PIPE, text=True)
    try:
        pid, host_dir = grader.stdout.readline().split()
        zygote = int(pid)
        children = f"/proc/{zygote}/task/{zygote}/children"
        child = wait_for(lambda: Path(children).read_text().split())[0]
        uid = UID_BASE + int(child)
        wait_for(lambda: processes_of(uid))
    finally:
        grader.kill()
        grader.communicate()  # waits, and closes the pipe
    wait_for(lambda: not os.path.exists(f"/proc/{zygote}") and not processes_of(uid))
    assert not os.path.exists(host_dir)


def wait_for(condition, timeout: float = 30.0):
    """Poll until condition() is truthy (a process-table condition), failing after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def test_signalling_every_reachable_process_hits_no_other_sandbox(box):
    requires_isolation(box, "user")
    honest: list[SandboxResult] = []
    with Sandbox() as other:
        neighbour = threading.Thread(target=lambda: honest.append(run(other, """
            import time
            def work():
                time.sleep(1)
                return "alive"
            """, Call("work"))))
        neighbour.start()
        time.sleep(0.3)  # let the neighbour's run start
        attack = run(box, """
            import os, signal
            def kill_everything():
                os.kill(-1, signal.SIGKILL)
                return "only myself to signal, and kill(-1) spares the caller"
            """, Call("kill_everything"))
        neighbour.join()
    assert attack.calls[0].status == "ok"
    assert (honest[0].reason, honest[0].calls[0].value) == (None, "alive")
    assert_batch_goes_on(box)


def test_if_the_zygote_is_killed_mid_run_its_child_dies_too_and_the_run_is_retried():
    results: list[SandboxResult] = []
    with Sandbox() as sandbox:
        zygote = sandbox.zygote_pid
        runner = threading.Thread(target=lambda: results.append(run(
            sandbox, "import time\ndef stay():\n    time.sleep(600)\n", Call("stay"),
            limits=Limits(wall_seconds=5))))
        runner.start()
        children = f"/proc/{zygote}/task/{zygote}/children"
        uid = UID_BASE + int(wait_for(lambda: Path(children).read_text().split())[0])
        wait_for(lambda: processes_of(uid))  # the child has switched to its own uid
        os.kill(zygote, signal.SIGKILL)
        wait_for(lambda: not processes_of(uid))
        runner.join()
    # The retry in a new zygote ran the same submission, which slept until the timeout.
    assert results[0].reason == "wall-clock timeout after 5 s"


def test_a_dead_zygote_is_replaced_and_the_batch_goes_on():
    with Sandbox() as sandbox:
        os.kill(sandbox.zygote_pid, signal.SIGKILL)
        assert_batch_goes_on(sandbox)


# --------------------------------------------------------------------------- the grader around the sandbox


def test_symlinks_and_fifos_in_a_submission_folder_are_never_followed_and_no_temp_folder_is_left(
        tmp_path_factory, template_course):
    base = tmp_path_factory.mktemp("symlinks")
    course = copy_course(template_course, base / "course")
    master = course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"  # full marks, if followed
    submission = submit(course, "alice", b"")
    submission.unlink()
    submission.symlink_to(master)
    bob = submit(course, "bob", release_notebook(course)).parent
    target = base / "created-by-the-grader"
    (bob / lock_name(ASSIGNMENT)).symlink_to(target)
    (bob / "timestamp.txt").unlink()
    (bob / "timestamp.txt").symlink_to(master)  # would be copied into autograded/, if followed
    (bob / "notes.txt").symlink_to(master)  # other files are copied like nbgrader does, links never
    carol = submit(course, "carol", release_notebook(course)).parent
    (carol / "timestamp.txt").unlink()
    os.mkfifo(carol / "timestamp.txt")  # opening it to read would wait for a writer forever
    (carol / "submission_secret.txt").write_text("s3cr3t")  # release_feedback needs it in autograded/
    temp = base / "tmp"  # the system temporary folder of this run
    temp.mkdir()
    results = {r["student"]: r for r in coursekit(course, env={**nbgrader_env(), "TMPDIR": str(temp)},
                                                  timeout=300)}
    assert results["alice"]["score"] == 0
    assert f"{ASSIGNMENT}.ipynb is a symbolic link, which the grader never follows" in results["alice"]["reason"]
    assert results["bob"]["status"] == "graded" and not os.path.lexists(target)
    assert "timestamp.txt ignored: timestamp.txt is a symbolic link" in results["bob"]["reason"]
    assert not (course / "autograded" / "bob" / ASSIGNMENT / "timestamp.txt").exists()
    assert not os.path.lexists(course / "autograded" / "bob" / ASSIGNMENT / "notes.txt")
    assert "not copied to autograded/: notes.txt (notes.txt is a symbolic link" in results["bob"]["reason"]
    assert (course / "autograded" / "carol" / ASSIGNMENT / "submission_secret.txt").read_text() == "s3cr3t"
    assert "timestamp.txt ignored: timestamp.txt is not a regular file" in results["carol"]["reason"]
    assert list(temp.iterdir()) == []


def test_grading_is_refused_without_cap_sys_admin_unless_insecure(box, tmp_path_factory, template_course):
    requires_isolation(box, "filesystem")  # this machine must have it, to take it away
    course = copy_course(template_course,
                         tmp_path_factory.mktemp("no-sys-admin") / "course")
    submit(course, "alice", release_notebook(course))
    drop = ("setpriv", "--bounding-set", "-sys_admin")  # root, minus namespaces and mounts
    refused = run_coursekit(course, wrapper=drop)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "coursekit refuses to grade: the sandbox on this machine lacks a private read-only view" \
        in refused.stderr
    assert "give the grader CAP_SYS_ADMIN" in refused.stderr and "--insecure" in refused.stderr
    assert not (course / "autograded").exists()
    graded = coursekit(course, "--insecure", wrapper=drop)
    assert [r["status"] for r in graded] == ["graded"]
    assert graded[0]["reason"].startswith("INSECURE: graded with --insecure, without filesystem, "
                                          "network, ipc isolation")


AS_AN_ORDINARY_USER = f"""
import os
from coursekit.sandbox import Call, IsolationMissing, Sandbox
assert os.geteuid() != 0
try:
    Sandbox(preload=()).isolation
    print("not refused")
except IsolationMissing as refusal:
    print(refusal.missing, refusal)
with Sandbox(preload=(), insecure=True) as box:
    result = box.run({HE!r}, [Call("initialize_parameters_he", ([2, 4, 1],))], workdir_files=None)
    print(result.calls[0].value["W1"][0, 0], box.insecure_note)
"""


def test_an_ordinary_user_is_refused_unless_insecure():
    # uid 65534 (nobody); the read capability only lets it read this root-only Python installation
    nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")
    done = subprocess.run([*nobody, sys.executable, "-c", AS_AN_ORDINARY_USER], cwd=REPOSITORY,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    refusal, insecure = done.stdout.splitlines()
    assert refusal.startswith("('user', 'filesystem', 'network', 'ipc') coursekit refuses to grade: "
                              "the sandbox on this machine lacks a separate user id for each run")
    assert "run coursekit as root" in refusal
    assert insecure == (f"{expected_he([2, 4, 1])['W1'][0, 0]} INSECURE: graded with --insecure, "
                        "without user, filesystem, network, ipc isolation; the submission could "
                        "read or change what the grader can")



def test_a_submission_cannot_read_an_nbgrader_config_in_any_jupyter_configuration_folder(monkeypatch):
    """A site-wide nbgrader_config.py holds the gradebook's db_url, password included.  One is
    planted in every folder `jupyter --paths` lists for configuration (JUPYTER_CONFIG_DIR set to a
    folder inside the virtual environment, which the sandbox binds), in /usr/local/etc/jupyter and
    /etc/jupyter, and in the base Python's etc/jupyter; a fresh sandbox reads none of them.  The
    planted files hold only a comment, so an nbgrader run elsewhere that loads one meanwhile does
    nothing different."""
    from jupyter_core.paths import jupyter_config_path

    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(Path(sys.prefix) / "coursekit-test-jupyter-config"))
    folders = dict.fromkeys([*jupyter_config_path(), str(Path.home() / ".jupyter"), "/usr/local/etc/jupyter",
                             "/etc/jupyter", str(Path(sys.base_prefix) / "etc" / "jupyter")])
    assert str(Path(sys.prefix) / "coursekit-test-jupyter-config") in folders
    planted: list[Path] = []
    made: list[Path] = []
    try:
        for folder in map(Path, folders):
            missing = [p for p in [folder, *folder.parents] if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            made += reversed(missing)  # in the order made: removed in the reverse order
            config = folder / "nbgrader_config.py"
            if config.exists():  # a real one: leave it alone and plant nothing here
                continue
            config.write_text(f"# db_url = 'postgresql://grader:{SECRET}@db/gradebook'\n")
            planted.append(config)
        with Sandbox(preload=()) as fresh:
            requires_isolation(fresh, "filesystem")
            result = fresh.run(READ_ANYTHING, [Call("read", (str(p),)) for p in planted],
                               workdir_files=None, limits=QUICK)
    finally:
        for config in planted:
            config.unlink()
        for folder in reversed(made):
            folder.rmdir()
    assert result.reason is None
    assert len(planted) >= 5
    for config, call in zip(planted, result.calls):
        assert call.value in ("FileNotFoundError", "PermissionError"), (config, call.value)
    assert SECRET not in result.output
