"""`get_ipython()` for notebook cells run outside a kernel: IPython's magics, enough of them.

Runs in: the sandbox child, as its fresh unprivileged uid (the zygote loads this file beside
_runner.py, before any child is forked, and hands `Shell` to the runner), and in the grader's
process, where replay runs the master's trusted cells with the same `get_ipython()`
(`coursekit.sandbox.Shell`, the package's public face, offers it to score.py).  It imports only
the standard library and NumPy, so the zygote can load it without the coursekit package, and
nothing of the grader's reaches the child through it.
"""

from __future__ import annotations

import os
import sys
import time
import types

# Bound now, as in _runner.py: a submission rebinding builtins breaks its own code, not its magics.
from builtins import compile, eval, exec, frozenset, isinstance, print  # noqa: A004, UP029

from numpy import ndarray as _ndarray

__all__ = ["Shell", "UsageError", "display"]



class UsageError(Exception):
    """What IPython raises for a magic it does not know."""


# Magics that change only how a kernel displays or reloads things: nothing to do here.
_QUIET_MAGICS = frozenset({
    "matplotlib", "load_ext", "reload_ext", "unload_ext", "autoreload", "aimport", "config",
    "precision", "who", "whos", "who_ls", "pinfo", "pinfo2", "psearch", "pdoc", "pdef",
    "psource", "pfile", "history", "hist", "lsmagic", "magic", "xmode", "pprint", "colors",
    "automagic", "autocall", "pip", "conda", "debug", "pdb", "tb", "page", "notebook",
    "connect_info", "load", "save", "alias", "unalias", "rehashx", "store", "logstart",
    "logstop", "logon", "logoff", "logstate", "bookmark", "dhist", "dirs", "html", "HTML",
    "markdown", "latex", "javascript", "js", "svg", "env",
})


class Shell:
    """`get_ipython()` for cells that IPython's input transformer turned into calls.

    The grader transforms every cell with IPython's own TransformerManager (a cell magic's
    body too), so only the calls it emits reach this class.  Magics that run code (time,
    timeit, prun, capture) run it once in the user namespace; ``%reset`` empties it as
    IPython's does (a kernel under nbgrader cannot ask for confirmation, so it resets with or
    without ``-f``); unknown magics raise UsageError, as IPython does.  Shell escapes
    (``!cmd``, ``x = !cmd``) run the command where processes may start (`processes`, as in a
    kernel: its output is printed, its status is ``_exit_code``, and a failing command does not
    stop the cell); elsewhere (the sandbox refuses new processes, and the grader's own process
    never runs them) they print why and set ``_exit_code`` to 127, as a shell that cannot find
    the command does, and the cell goes on.
    """

    # What a kernel's namespace holds before any cell runs: what %reset keeps.
    KERNEL_NAMES = frozenset({"__builtins__", "__name__", "__doc__", "__package__", "__loader__", "__spec__",
                              "get_ipython", "display", "In", "Out", "exit", "quit"})

    def __init__(self, namespace: dict, processes: bool = False) -> None:
        self.user_ns = namespace
        self.processes = processes

    def _run(self, code: str, frame: types.FrameType | None, mode: str):
        scope = frame.f_locals if frame is not None and frame.f_globals is self.user_ns else None
        start = time.perf_counter()
        if mode == "eval":
            try:
                compiled = compile(code, "<magic>", "eval")
            except SyntaxError:
                compiled, mode = compile(code, "<magic>", "exec"), "exec"
        else:
            compiled = compile(code, "<magic>", "exec")
        value = (eval if mode == "eval" else exec)(compiled, self.user_ns, scope)
        return value, time.perf_counter() - start

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1):
        if name in ("time", "timeit", "prun"):
            cpu = time.process_time()
            value, seconds = self._run(_statement(line), sys._getframe(_stack_depth), "eval")
            _print_times(time.process_time() - cpu, seconds)
            return value if name == "time" else None
        if name == "pwd":
            return os.getcwd()
        if name == "set_env":
            key, _, value = line.replace("=", " ", 1).partition(" ")
            os.environ[key.strip()] = value.strip()
            return None
        if name == "reset":
            self.reset(line.split())
            return None
        if name in ("sx", "system"):
            return self.getoutput(line)
        if name in _QUIET_MAGICS:
            return None
        raise UsageError(f"Line magic function `%{name}` not found.")

    def run_cell_magic(self, name: str, line: str, cell: str):
        if name in ("timeit", "prun") and _statement(line):  # %%timeit's line is setup code
            self._run(_statement(line), None, "exec")
        if name in ("time", "timeit", "prun", "capture"):
            cpu = time.process_time()
            _, seconds = self._run(cell, None, "exec")
            if name != "capture":
                _print_times(time.process_time() - cpu, seconds)
            return None
        if name == "writefile":
            path = line.split()[-1] if line.split() else ""
            mode = "a" if "-a" in line.split() else "w"
            with open(path, mode, encoding="utf-8") as fh:
                fh.write(cell)
            print(f"Writing {path}")
            return None
        if name in ("bash", "sh", "script", "system"):
            self.system(cell)
            return None
        if name in _QUIET_MAGICS:
            return None
        raise UsageError(f"Cell magic `%%{name}` not found.")

    def reset(self, words: list) -> None:
        """%reset [-f] [-s] [in|out|array|dhist]: IPython's, as far as a namespace goes."""
        targets = [w for w in words if not w.startswith("-")]
        if not targets:  # everything the cells defined
            for key in list(self.user_ns):
                if key not in self.KERNEL_NAMES:
                    del self.user_ns[key]
        if "array" in targets:
            for key, value in list(self.user_ns.items()):
                if isinstance(value, _ndarray) and key not in self.KERNEL_NAMES:
                    del self.user_ns[key]
        if not targets or "out" in targets:
            out = self.user_ns.get("Out")
            if isinstance(out, dict):
                out.clear()

    def _shell(self, cmd: str):
        """(output, status) of a shell command, or None where no process may start."""
        if not self.processes:
            return None
        import subprocess  # noqa: PLC0415 - only cells with shell escapes need it
        try:
            done = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, check=False)
        except OSError:  # the sandbox refuses new processes (seccomp), or there is no shell
            return None
        return done.stdout.decode("utf-8", "replace"), done.returncode

    def system(self, cmd: str) -> None:
        ran = self._shell(cmd)
        if ran is None:
            print(f"coursekit: the shell command `{cmd.strip()[:200]}` did not run: the grader starts no "
                  "processes (its status is 127, as for a command not found)")
            self.user_ns["_exit_code"] = 127
            return
        text, status = ran
        print(text, end="")
        self.user_ns["_exit_code"] = status

    def getoutput(self, cmd: str, split: bool = True):
        ran = self._shell(cmd)
        text = ran[0] if ran is not None else ""
        return text.splitlines() if split else text

    def magic(self, line: str):
        name, _, rest = line.lstrip("%").partition(" ")
        return self.run_line_magic(name, rest, 2)


def _print_times(cpu: float, wall: float) -> None:
    """What %time prints, in IPython's words (its own units are finer; the text is not graded)."""
    print(f"CPU times: total: {cpu * 1e3:.2f} ms")
    print(f"Wall time: {wall * 1e3:.2f} ms")


# Options of %time/%timeit/%prun that take a value (IPython's option strings), then flags.
_VALUED_OPTIONS = frozenset("nrpsTDl")


def _statement(line: str) -> str:
    """The code of a %timeit/%prun line, without its options (-n 1 -r 1 -q -o ...)."""
    words = line.split(" ")
    while words and (not words[0] or words[0].startswith("-")):
        option = words.pop(0)
        if len(option) == 2 and option[1] in _VALUED_OPTIONS and words:
            words.pop(0)
    return " ".join(words)


def display(*objs, **kwargs) -> None:
    """`display()` in a cell: the objects' reprs, printed (what a kernel shows as text)."""
    for obj in objs:
        print(repr(obj))
