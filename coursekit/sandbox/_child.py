"""The sandbox's processes: the zygote (trusted) and the per-submission child (untrusted).

Runs in: the zygote, as root (the user who runs coursekit), started by the grader; and, after
each fork, the child, which drops to a fresh unprivileged uid before any submission code runs.

This file runs as a script (``python -I _child.py ...``), started by
:class:`coursekit.sandbox.Sandbox`; it imports nothing from coursekit, so the
zygote's memory holds no grader code or data beyond what this file needs.

The zygote imports NumPy and friends once, builds the isolated view of the
machine once (mount, network and IPC namespaces, a read-only chroot), then
serves one request at a time from the grader: fork a child, let it drop to a
fresh unprivileged uid and run the submission, watch the clock and the
output, kill everything the child left behind, and hand back the output file
as a file descriptor.  The zygote itself never reads submission
code, output or results, so nothing of one student stays in the memory the
next student's child inherits.

The records a run sends travel on a socket between the child and the grader,
past the zygote: _runner.py writes them, _protocol.py (the grader's side) reads them.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import py_compile
import resource
import select
import shutil
import signal
import socket
import stat
import sys
import time
import traceback
import types
from typing import Any

import numpy

CHANNEL_FD = 3  # the child's end of the run's channel to the grader (_runner.CHANNEL_FD)
# The child's signal pipe to the zygote (see supervise): READY once its sandbox is complete,
# just before the submission runs, then DONE once the last result is written.  Any byte after
# READY ends the run, so a submission that writes here early only cuts its own run short.
SIGNAL_FD = 4
READY, DONE = b"1", b"2"
SETUP_FAILED_EXIT = 121  # the child could not build its sandbox (our bug, not the student's)
REPORT_FAILED_EXIT = 122  # the submission broke the child's reporting code
UID_BASE = 2_000_000_000  # uid = UID_BASE + pid of the child: unique among live processes
CHROOT_WORKDIR = "/sandbox/work"  # the submission's cwd, as the child sees it
CHROOT_PYCACHE = "/pycache"  # sys.pycache_prefix of the child, read-only for it
CACHED_FILE_BYTES = 1 << 20  # release files up to this size are kept in the zygote's memory

# Linux constants (not all exposed by the os module on Python 3.11).
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
CLONE_THREAD = 0x00010000

# Files of /etc a Python process may need; everything else in /etc stays out.
ETC_FILES = ("passwd", "group", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "localtime",
             "mime.types", "matplotlibrc")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _ok(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _ok(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {source} on {target}")


def _bind_readonly(path: str, target: str, *, nodev: bool = True) -> None:
    _mount(path, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | (MS_NODEV if nodev else 0)
    _mount(None, target, None, flags)


def _mountpoint_for(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        open(target, "a").close()


# --------------------------------------------------------------------------- seccomp

# x86_64 system call numbers the submission never needs.  Denying them keeps
# runs from talking to each other (System V IPC, message queues), from leaving
# the sandbox's namespaces, and shrinks the kernel surface it can reach.
_DENIED_SYSCALLS_X86_64 = {
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66,
    "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "ptrace": 101,
    "pivot_root": 155, "chroot": 161, "mount": 165, "umount2": 166, "semtimedop": 220,
    "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
    "mq_notify": 244, "mq_getsetattr": 245, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "kcmp": 312, "memfd_create": 319, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "memfd_secret": 447,
}
# socket() and socketpair() may create only these families.  Others reach kernel code a
# submission never needs (AF_NETLINK, AF_PACKET, AF_ALG, ...), and AF_VSOCK reaches the
# hypervisor's host, which a network namespace does not isolate.
_SOCKET_SYSCALLS_X86_64 = {"socket": 41, "socketpair": 53}
_ALLOWED_SOCKET_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)
# setsockopt(SOL_SOCKET, SO_SNDBUF/SO_RCVBUF) is skipped (answers success, changes nothing):
# data queued in socket buffers is not address space, and with buffers raised to wmem_max a
# submission held about 280 MB in socketpairs passed over a socket, beyond RLIMIT_AS.  At the
# default size (wmem_default) the same trick holds about a tenth of that.
_SETSOCKOPT_X86_64 = 54
_IGNORED_SOCKET_OPTIONS = (socket.SO_SNDBUF, socket.SO_RCVBUF)
_FORK_SYSCALLS_X86_64 = {"fork": 57, "vfork": 58}
_CLONE, _CLONE3 = 56, 435
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_RET_ALLOW, _RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
_RET_EPERM, _RET_ENOSYS = 0x00050000 | 1, 0x00050000 | 38
_RET_SKIP = 0x00050000  # SECCOMP_RET_ERRNO with errno 0: the call is not made and returns 0
# classic BPF opcodes
_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x06


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def seccomp_program(allow_fork: bool) -> _SockFprog | None:
    """A seccomp filter denying the calls above, sockets of other families than
    AF_UNIX/AF_INET/AF_INET6, larger socket buffers and, unless allowed, new processes.

    Threads stay possible: clone() with CLONE_THREAD is allowed, and clone3()
    answers ENOSYS so that glibc falls back to clone().  None on machines other
    than x86_64 (the sandbox then runs without the filter and says so).
    """
    if os.uname().machine != "x86_64":
        return None
    denied = sorted(_DENIED_SYSCALLS_X86_64.values())
    if not allow_fork:
        denied += sorted(_FORK_SYSCALLS_X86_64.values())
    prog = [
        (_LD_W_ABS, 0, 0, 4),                          # A = seccomp_data.arch
        (_JEQ_K, 1, 0, _AUDIT_ARCH_X86_64),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),             # i386/x32 entry points: not allowed
        (_LD_W_ABS, 0, 0, 0),                          # A = seccomp_data.nr
        (_JGE_K, 0, 1, _X32_SYSCALL_BIT),
        (_RET_K, 0, 0, _RET_EPERM),
        (_JEQ_K, 0, 1, _CLONE3),
        (_RET_K, 0, 0, _RET_ENOSYS),
    ]
    for nr in denied:
        prog += [(_JEQ_K, 0, 1, nr), (_RET_K, 0, 0, _RET_EPERM)]
    socket_nr, socketpair_nr = _SOCKET_SYSCALLS_X86_64.values()
    families = len(_ALLOWED_SOCKET_FAMILIES)
    prog += [
        (_JEQ_K, 1, 0, socket_nr),
        (_JEQ_K, 0, families + 3, socketpair_nr),      # neither: on to the next check
        (_LD_W_ABS, 0, 0, 16),                         # A = the family (low 32 bits of arg 0)
        *((_JEQ_K, families - i, 0, family) for i, family in enumerate(_ALLOWED_SOCKET_FAMILIES)),
        (_RET_K, 0, 0, _RET_EPERM),
        (_RET_K, 0, 0, _RET_ALLOW),
        (_JEQ_K, 0, 7, _SETSOCKOPT_X86_64),           # not setsockopt: on to the next check
        (_LD_W_ABS, 0, 0, 24),                         # A = level (arg 1)
        (_JEQ_K, 0, 4, socket.SOL_SOCKET),
        (_LD_W_ABS, 0, 0, 32),                         # A = option name (arg 2)
        (_JEQ_K, 1, 0, _IGNORED_SOCKET_OPTIONS[0]),
        (_JEQ_K, 0, 1, _IGNORED_SOCKET_OPTIONS[1]),
        (_RET_K, 0, 0, _RET_SKIP),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    if not allow_fork:
        prog += [
            (_JEQ_K, 0, 3, _CLONE),
            (_LD_W_ABS, 0, 0, 16),                     # A = low 32 bits of clone's flags
            (_JSET_K, 1, 0, CLONE_THREAD),
            (_RET_K, 0, 0, _RET_EPERM),
        ]
    prog.append((_RET_K, 0, 0, _RET_ALLOW))
    filters = (_SockFilter * len(prog))(*(_SockFilter(*insn) for insn in prog))
    fprog = _SockFprog(len(prog), filters)
    fprog._keep = filters  # the array must outlive the struct that points to it
    return fprog


# --------------------------------------------------------------------------- zygote


class Zygote:
    """State of the zygote: where the sandbox lives and what isolation it got."""

    def __init__(self, host_dir: str, config: dict) -> None:
        self.host_dir = host_dir
        self.config = config
        self.isolation: dict[str, Any] = {"user": False, "filesystem": False, "network": False,
                                          "ipc": False, "notes": []}
        self.chroot: str | None = None
        self.sandbox_dir = os.path.join(host_dir, "sandbox")  # run dirs, as the zygote sees them
        self.pycache_dir = os.path.join(host_dir, "pycache")  # compiled release modules
        self.disk_bytes = 0
        # release folder -> its directories and its files' bytes (None: too large to keep)
        self.release_cache: dict[str, tuple[list[str], dict[str, bytes | None]]] = {}
        # Preload names not importable at start: perhaps modules of the release folder, imported
        # (once, from the first release folder served) by import_release_modules.
        self.deferred: list[str] = []
        self.release_modules: dict[str, ReleaseModules] = {}  # release folder -> its modules
        self.release_paths: dict[str, list[str]] = {}  # release folder -> its files and folders
        self.control = -1  # the socket to the grader
        self.seccomp = {allow: seccomp_program(allow) for allow in (False, True)}
        self.isolation["seccomp"] = self.seccomp[False] is not None
        if self.seccomp[False] is None:
            self.isolation["notes"].append("no seccomp filter on this architecture")
        # What each child runs (its steps, and the cells' get_ipython()), loaded now, before any fork.
        self.runner = _load_beside("_runner")
        self.kernel = _load_beside("_shell")

    # -- setup, once per zygote ------------------------------------------------

    def isolate(self) -> None:
        notes = self.isolation["notes"]
        if os.geteuid() != 0:
            notes.append("not running as root: no separate uid, no namespaces, no chroot")
            os.makedirs(self.sandbox_dir, mode=0o700)
            os.makedirs(self.pycache_dir, mode=0o755)
            return
        flags = CLONE_NEWNS | CLONE_NEWIPC
        if _libc.unshare(CLONE_NEWNET) == 0:
            self.isolation["network"] = True
        else:
            notes.append(f"no network namespace: {os.strerror(ctypes.get_errno())}")
        if _libc.unshare(flags) != 0:
            notes.append(f"no mount/IPC namespace: {os.strerror(ctypes.get_errno())}")
            os.makedirs(self.sandbox_dir, mode=0o711)
            os.makedirs(self.pycache_dir, mode=0o755)
            os.chmod(self.host_dir, 0o711)
            self.isolation["user"] = True
            return
        self.isolation["ipc"] = True
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        root = self.host_dir
        _mount("coursekit-root", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path in self._readonly_paths():
            target = root + path
            _mountpoint_for(path, target)
            _bind_readonly(path, target)
        self._hide(root)
        for name in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
            if os.path.islink("/" + name):
                os.symlink(os.readlink("/" + name), os.path.join(root, name))
        os.makedirs(root + "/dev", mode=0o755)
        _mount("coursekit-dev", root + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=0755")
        for dev in DEVICES:
            if os.path.exists("/dev/" + dev):
                _mountpoint_for("/dev/" + dev, f"{root}/dev/{dev}")
                _bind_readonly("/dev/" + dev, f"{root}/dev/{dev}", nodev=False)
        _mount(None, root + "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID)
        self.sandbox_dir = root + "/sandbox"
        os.makedirs(self.sandbox_dir, mode=0o711)
        self._mount_workspace(self.config["disk_bytes"])
        self.pycache_dir = root + CHROOT_PYCACHE
        os.makedirs(self.pycache_dir, mode=0o755)
        _mount("coursekit-pycache", self.pycache_dir, "tmpfs", MS_NOSUID | MS_NODEV,
               "size=64m,mode=0755")
        _mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        self.chroot = root
        self.isolation["user"] = True
        self.isolation["filesystem"] = True

    def _hide(self, root: str) -> None:
        """An empty read-only tmpfs over each configuration folder the binds above made visible
        (`sandbox.configuration_paths`: Jupyter's and nbgrader's, where a site-wide
        nbgrader_config.py keeps the gradebook's password, and the Python installations'
        etc/).  Only a path without symbolic links is covered: a link resolves on the host here."""
        for path in self.config.get("hidden_paths", ()):
            target = root + path
            if os.path.isdir(target) and os.path.realpath(target) == target:
                _mount("coursekit-hidden", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       "size=4k,nr_inodes=1,mode=0555")

    def _mount_workspace(self, disk_bytes: int) -> None:
        """A size-capped tmpfs for the submission's cwd, so it cannot fill the disk."""
        data = f"size={disk_bytes},nr_inodes=4096,mode=0711"
        if self.disk_bytes:
            _mount(None, self.sandbox_dir, None, MS_REMOUNT | MS_NOSUID | MS_NODEV, data)
        else:
            _mount("coursekit-work", self.sandbox_dir, "tmpfs", MS_NOSUID | MS_NODEV, data)
        self.disk_bytes = disk_bytes

    def _readonly_paths(self) -> list[str]:
        paths = ["/usr"] + [p for p in (f"/etc/{f}" for f in ETC_FILES) if os.path.exists(p)]
        for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                       *self.config["readonly_paths"]):
            real = os.path.realpath(prefix)
            if os.path.exists(real) and not any(real == p or real.startswith(p + "/")
                                                for p in paths):
                paths.append(real)
            if prefix != real and os.path.exists(prefix) and prefix not in paths:
                paths.append(prefix)  # e.g. a venv reached through a symlink
        return paths

    # -- one request -------------------------------------------------------------

    def serve(self, request: dict, input_fd: int) -> tuple[dict, list[int]]:
        limits = request["limits"]
        if self.chroot and limits["disk_bytes"] != self.disk_bytes:
            self._mount_workspace(limits["disk_bytes"])
        remove_tree(self.workdir)  # left over if an earlier clean-up failed
        os.mkdir(self.workdir, 0o700)
        self._copy_release(request["release"])
        out_r, out_w = os.pipe()
        # The child signals READY here once its sandbox is complete (exits before that are
        # the sandbox's failures, not the student's), then DONE after its last result.
        signal_r, signal_w = os.pipe()
        output_fd = os.memfd_create("coursekit-output", 0)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                child_main(self, request, input_fd, out_w, signal_w)  # never returns
            for fd in (out_w, signal_w):
                os.close(fd)
            out_w = signal_w = -1
            status = supervise(pid, out_r, signal_r, output_fd, limits, self.control)
        except BaseException:
            kill_leftovers()  # e.g. the grader went away mid-run: nothing may outlive the run
            os.close(output_fd)
            raise
        finally:
            for fd in (out_r, out_w, signal_r, signal_w):
                if fd >= 0:
                    os.close(fd)
        return status, [output_fd]

    def remove(self) -> None:
        """On the way out: take down the chroot and delete the grader's (empty) mount point."""
        if not self.chroot:
            remove_tree(self.host_dir)
        elif _libc.umount2(self.chroot.encode(), MNT_DETACH) == 0:
            os.rmdir(self.host_dir)  # never rmtree here: the chroot holds bind mounts of the host

    def clean(self) -> None:
        """Delete the last run's working directory (after replying: the grader need not wait)."""
        try:
            remove_tree(self.workdir)
        except OSError:
            pass  # the next run removes it first, and reports it if that fails again

    @property
    def workdir(self) -> str:
        """The submission's working directory, as the zygote sees it (the same for every run)."""
        return os.path.join(self.sandbox_dir, "work")

    def child_paths(self) -> tuple[str, str]:
        """The child's cwd and pycache prefix, as the child sees them."""
        if self.chroot:
            return CHROOT_WORKDIR, CHROOT_PYCACHE
        return self.workdir, self.pycache_dir

    def _copy_release(self, release: str | None) -> None:
        """Copy the release folder into the run's working directory.

        The folder is read once: its directories, in creation order, and its small files' bytes
        stay in the zygote (a few hundred kB here), so each run only writes them; larger files
        are copied from the folder each time, to keep the zygote (and so each fork) small."""
        if not release:
            return
        cached = self.release_cache.get(release)
        if cached is None:
            files: list[str] = []
            dirs: list[str] = []
            paths: list[str] = []
            for dirpath, subdirs, names in os.walk(release):
                rel = os.path.relpath(dirpath, release)
                files.extend(os.path.normpath(os.path.join(rel, n)) for n in names)
                dirs.extend(os.path.normpath(os.path.join(rel, n)) for n in subdirs)
                paths.extend(os.path.normpath(os.path.join(rel, n)) for n in subdirs + names)
            contents: dict[str, bytes | None] = {}
            for rel in files:
                source = os.path.join(release, rel)
                if os.path.getsize(source) <= CACHED_FILE_BYTES:
                    with open(source, "rb") as f:
                        contents[rel] = f.read()
                else:
                    contents[rel] = None
            cached = self.release_cache[release] = (dirs, contents)
            self.release_paths[release] = paths
            self._compile(release, files)
        dirs, contents = cached
        for rel in dirs:
            os.mkdir(os.path.join(self.workdir, rel))
        for rel, data in contents.items():
            target = os.path.join(self.workdir, rel)
            if data is None:
                shutil.copyfile(os.path.join(release, rel), target)
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
        if self.deferred and not self.release_modules:
            self.release_modules[release] = self.import_release_modules(list(self.release_cache[release][1]))
            remove_tree(self.workdir)  # the first run, too, starts from an untouched copy
            os.mkdir(self.workdir, 0o700)
            self._copy_release(release)

    def import_release_modules(self, files: list[str]) -> ReleaseModules:
        """Import the deferred preload names that are modules of this release, as a child would.

        The zygote imports them from the fresh copy in the working directory, inside the
        child's view of the machine (its chroot, working directory, sys.path and environment;
        root escapes the chroot again through a descriptor of the real root kept open), so
        every path a module computes and every file it reads at import is the one the child
        would see.  The modules leave sys.modules again and wait in a `ReleaseModules` for the
        children of this release.  Only the first release folder a zygote serves gets this:
        what a module changes elsewhere at import (another module's settings) stays in the
        zygote, which is right for that release's children only.
        """
        names = [name for name in self.deferred if f"{name}.py" in files]
        if not names:
            return ReleaseModules({})
        workdir, pycache = self.child_paths()
        before = set(sys.modules)
        saved = sys.path[0], sys.pycache_prefix
        real_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            if self.chroot:
                os.chroot(self.chroot)
            os.chdir(workdir)
            sys.path[0], sys.pycache_prefix = workdir, pycache
            for name in names:
                importlib.import_module(name)
        except Exception as exc:  # the children import them themselves, and report what fails
            self.isolation["notes"].append(f"could not preload {names}: {type(exc).__name__}: {exc}")
            names = []
        finally:
            os.fchdir(real_root)
            if self.chroot:
                os.chroot(".")
            os.fchdir(here)
            os.close(real_root)
            os.close(here)
            sys.path[0], sys.pycache_prefix = saved
            sys.path_importer_cache.pop(workdir, None)
        modules = {}
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            path = getattr(module, "__file__", None) or ""
            if path.startswith(workdir + os.sep):  # the release's: children get them from here
                del sys.modules[name]
                with open(os.path.join(self.workdir, os.path.relpath(path, workdir)), "rb") as f:
                    modules[name] = (module, path, f.read())
        if not names:
            return ReleaseModules({})
        gc.collect()
        gc.freeze()  # as at start: the children's collector leaves these objects alone
        collapse_into_huge_pages()
        return ReleaseModules(modules)

    def _compile(self, release: str, files: list[str]) -> None:
        """Byte-compile the release's modules once, for the path the child imports them from.

        The .pyc files are hash-checked against the source, so a child that edits
        its copy of a module simply recompiles it (and cannot write the cache).
        """
        child_workdir, _ = self.child_paths()
        for rel in files:
            if not rel.endswith(".py"):
                continue
            source_as_child_sees_it = os.path.join(child_workdir, rel)
            stem = os.path.basename(rel)[:-3]
            cfile = os.path.join(self.pycache_dir + os.path.dirname(source_as_child_sees_it),
                                 f"{stem}.{sys.implementation.cache_tag}.pyc")
            try:
                py_compile.compile(os.path.join(release, rel), cfile=cfile,
                                   dfile=source_as_child_sees_it, doraise=True,
                                   invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            except py_compile.PyCompileError:
                pass  # the child reports the SyntaxError when it imports the module


def remove_tree(path: str) -> None:
    """Delete `path` and everything under it, however deep, never following a symbolic link.

    shutil.rmtree recurses once per level (a submission's 1500-deep tree raised
    RecursionError and took the zygote down); this walks down and up with one open
    directory at a time and a list of names, so depth costs neither stack nor descriptors.
    The tree is static: every process of the run is dead before it is removed.
    """
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    names: list[str] = []  # the path from `path` down to the directory `fd` is open on
    try:
        while True:
            subdir = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subdir = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if subdir is not None:  # go down into it
                fd, parent = os.open(subdir, _DIR_FLAGS, dir_fd=fd), fd
                os.close(parent)
                names.append(subdir)
            elif names:  # empty: go up and remove it
                fd, empty = os.open("..", _DIR_FLAGS, dir_fd=fd), fd
                os.close(empty)
                os.rmdir(names.pop(), dir_fd=fd)
            else:
                break
    finally:
        os.close(fd)
    os.rmdir(path)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _children() -> list[int]:
    """Live and zombie children of the zygote (it is a subreaper, so orphans land here)."""
    tid = os.getpid()
    try:
        with open(f"/proc/{tid}/task/{tid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:  # kernel without CONFIG_PROC_CHILDREN: scan /proc
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == tid:
                    kids.append(int(entry))
        return kids


def kill_leftovers() -> None:
    """SIGKILL every remaining descendant, layer by layer, and reap them.

    Orphans (even ones that called setsid) are re-parented to the zygote because
    it is a child subreaper, so repeating "kill and reap my children" until none
    are left gets every process the submission created.
    """
    while True:
        kids = _children()
        if not kids:
            return
        for kid in kids:
            try:
                os.kill(kid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for kid in kids:
            try:
                os.waitpid(kid, 0)
            except ChildProcessError:
                pass


class GraderGone(Exception):
    """The grader closed its end of the control socket (or died) while a child was running."""


def supervise(pid: int, out_r: int, signal_r: int, output_fd: int, limits: dict,  # noqa: C901, PLR0912, PLR0915 (one loop over the child's pipes and the clock, sharing their state)
              control: int) -> dict:
    """Wait for the child, draining its output into output_fd, until it ends or a limit hits.

    The run ends when the child signals DONE (or anything else after READY) on signal_r: the
    zygote then kills it, so a submission that breaks its own way out cannot keep the
    worker busy until the timeout.  `finished` says whether DONE came; the grader (sandbox/__init__.py) discards
    the results of a run that reported every call without it.
    """
    started = time.monotonic()
    deadline = started + limits["wall_seconds"]
    pidfd = os.pidfd_open(pid)
    out_open = signal_open = True
    copied = 0
    timed_out = output_exceeded = False
    # Output beyond output_bytes is drained into /dev/null (the run goes on: printing costs no
    # points); `output_exceeded` then tells the grader to say that the output was cut.
    discard = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    signals = _Signals()
    try:
        while not signals.ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            watched = [pidfd, control] + [out_r] * out_open + [signal_r] * signal_open
            readable, _, _ = select.select(watched, [], [], remaining)
            if control in readable:
                raise GraderGone()
            if signal_r in readable:
                signal_open = signals.read(signal_r)
            if out_r in readable:
                # splice moves the bytes pipe -> memfd inside the kernel: the zygote's memory
                # never holds the student's output.
                moved = os.splice(out_r, discard if output_exceeded else output_fd, 1 << 16)
                copied += moved
                if moved == 0:
                    out_open = False
                output_exceeded = copied > limits["output_bytes"]
            if pidfd in readable:
                break
    finally:
        os.close(pidfd)
        os.close(discard)
        # The child is not reaped yet, so its pid (and process group id) cannot be reused.
        if timed_out or signals.ended:
            os.kill(pid, signal.SIGKILL)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # the group is empty: the child has exited
            pass
    _, wstatus, usage = os.wait4(pid, 0)
    kill_leftovers()
    os.set_blocking(signal_r, False)  # signals sent just before the child exited
    while signal_open and not signals.ended:
        try:
            signal_open = signals.read(signal_r)
        except BlockingIOError:
            break
    # Whatever is still in the pipe (the writers are all dead now), up to the cap.
    os.set_blocking(out_r, False)
    while not output_exceeded:
        try:
            moved = os.splice(out_r, output_fd, 1 << 16)
        except BlockingIOError:
            break
        if moved == 0:
            break
        copied += moved
        output_exceeded = copied > limits["output_bytes"]
    return {
        "exit_status": os.waitstatus_to_exitcode(wstatus) if os.WIFEXITED(wstatus) else None,
        "signal": os.WTERMSIG(wstatus) if os.WIFSIGNALED(wstatus) else None,
        "timed_out": timed_out,
        "output_exceeded": output_exceeded,
        "setup_ok": signals.ready,
        "finished": signals.finished,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "wall_seconds": time.monotonic() - started,
    }


class _Signals:
    """What the child said on its signal pipe: READY, then one more byte that ends the run."""

    def __init__(self) -> None:
        self.ready = self.ended = self.finished = False

    def read(self, fd: int) -> bool:
        """Read what is there (at most two bytes matter); False at end of file."""
        data = os.read(fd, 2)
        for byte in data:
            if not self.ready:
                self.ready = bytes([byte]) == READY
            else:
                self.ended, self.finished = True, bytes([byte]) == DONE
                break
        return bool(data)


def zygote_main(argv: list[str]) -> None:
    host_dir, config_json, sock_fd = argv[1], argv[2], int(argv[3])
    config = json.loads(config_json)
    zygote = Zygote(host_dir, config)
    for name in config["preload"]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name and "." not in name:
                zygote.deferred.append(name)  # perhaps the release's own: see import_release_modules
            else:
                zygote.isolation["notes"].append(f"could not preload {name}: {exc}")
        except ImportError as exc:
            zygote.isolation["notes"].append(f"could not preload {name}: {exc}")
    zygote.runner.use_inline_backend()  # figures as in a kernel: shown and closed at each cell's end
    sock = socket.socket(fileno=sock_fd)
    zygote.control = sock_fd
    try:
        zygote.isolate()
    except OSError as exc:
        sock.send(json.dumps({"fatal": f"could not build the sandbox: {exc}"}).encode())
        raise SystemExit(1) from None
    _ok(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
    # The children's environment, set once here (the preloaded modules have read theirs).
    # The working directory has the same path in every run.
    workdir, _ = zygote.child_paths()
    os.environ.clear()
    os.environ.update({
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
        "LANG": "C.UTF-8", "MPLBACKEND": zygote.runner.INLINE_BACKEND, "MPLCONFIGDIR": workdir,
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })
    # Objects that exist now are shared copy-on-write with every child; keep the
    # collector from touching (and so copying) them.
    gc.collect()
    gc.freeze()
    collapse_into_huge_pages()
    sock.send(json.dumps({"isolation": zygote.isolation}).encode())
    try:
        serve_forever(zygote, sock)
    finally:
        zygote.remove()


def serve_forever(zygote: Zygote, sock: socket.socket) -> None:
    """Answer the grader's requests until it closes the connection or goes away."""
    while serve_one(zygote, sock):
        pass


def serve_one(zygote: Zygote, sock: socket.socket) -> bool:
    """One request; False when the grader is gone.

    Everything about the run (request, status, reply) lives in this function's frame and
    is freed when it returns, so the next child, forked from a later call, cannot find the
    previous run's status on its stack or among the zygote's objects.
    """
    try:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 1)
    except ConnectionResetError:
        return False
    if not message:
        return False  # the grader closed the connection or went away
    reply_fds: list[int] = []
    try:
        reply, reply_fds = zygote.serve(json.loads(message), fds[0])
    except GraderGone:
        return False
    except Exception as exc:  # our bug: report it rather than hang the grader
        reply = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    finally:
        for fd in fds:
            os.close(fd)
    try:
        socket.send_fds(sock, [json.dumps(reply).encode()], reply_fds)
    except (BrokenPipeError, ConnectionResetError):
        return False
    finally:
        for fd in reply_fds:
            os.close(fd)
    zygote.clean()
    return True


# --------------------------------------------------------------------------- child


def child_main(zygote: Zygote, request: dict, input_fd: int, out_w: int, signal_w: int) -> None:  # noqa: C901, PLR0912, PLR0915 (the child's lock-in steps, in the order they must happen)
    """In the forked child: lock ourselves in, then run the submission. Never returns."""
    zygote_pid = os.getppid()
    try:
        limits = request["limits"]
        os.setsid()
        # The run's channel (a socket to the grader) becomes fd CHANNEL_FD: steps arrive on
        # it one at a time and results leave on it (_runner.py).
        # Move the fds we keep above the low numbers before putting them in place,
        # so no dup2 below overwrites one we still need.
        null, out_w, channel, signal_w = (
            fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
            for fd in (os.open("/dev/null", os.O_RDONLY), out_w, input_fd, signal_w))
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(channel, CHANNEL_FD)
        os.dup2(signal_w, SIGNAL_FD)
        uid = UID_BASE + os.getpid()
        if zygote.isolation["user"]:  # the copy of the release files becomes the student's own
            for rel in (".", *zygote.release_paths.get(request["release"], ())):
                os.lchown(os.path.join(zygote.workdir, rel), uid, uid)
        # If the machine runs out of memory, the kernel kills submissions first.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
        workdir, pycache = zygote.child_paths()
        if zygote.chroot:
            os.chroot(zygote.chroot)
        os.chdir(workdir)
        for res, value in ((resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1)),
                           (resource.RLIMIT_AS, (limits["memory_bytes"],) * 2),
                           (resource.RLIMIT_NOFILE, (limits["open_files"],) * 2),
                           (resource.RLIMIT_FSIZE, (limits["file_bytes"],) * 2),
                           (resource.RLIMIT_CORE, (0, 0))):
            resource.setrlimit(res, value)
        if zygote.isolation["user"]:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["max_processes"],) * 2)
        _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        if zygote.isolation["user"]:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        # Die with the zygote, should it be killed (set after the uid change, which clears it).
        _ok(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != zygote_pid:
            os._exit(SETUP_FAILED_EXIT)  # it died before we asked
        _close_from(SIGNAL_FD + 1)
        sys.path[0] = os.getcwd()
        sys.pycache_prefix = pycache
        release_modules = zygote.release_modules.get(request["release"])
        if release_modules is not None and release_modules.modules:
            sys.meta_path.insert(0, release_modules)
        program = zygote.seccomp[bool(limits["allow_fork"])]
        if program is not None:
            _ok(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0),
                "prctl(PR_SET_SECCOMP)")
        # A fresh, unpredictable generator state for code that forgets to seed.
        numpy.random.set_state(("MT19937", numpy.frombuffer(os.urandom(2496), numpy.uint32), 624,
                                0, 0.0))  # key, position, no cached Gaussian
        # The way out, taken now: the submission may rebind os._exit, os.write or sys.stdout.
        exit_now, write, streams = os._exit, os.write, (sys.stdout, sys.stderr)
        write(SIGNAL_FD, READY)
    except BaseException:
        try:
            os.write(2, ("sandbox setup failed:\n" + traceback.format_exc()).encode())
        finally:
            os._exit(SETUP_FAILED_EXIT)
    try:
        zygote.runner.serve(limits, zygote.kernel)
    except BaseException as exc:  # noqa: BLE001 - the submission broke the reporting code
        try:
            write(2, f"\ncoursekit sandbox: could not report the results: {exc!r}\n".encode())
        finally:
            exit_now(REPORT_FAILED_EXIT)
    for stream in streams:  # the streams the run started with, not the submission's
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - e.g. its descriptor closed by the submission
            pass
    try:
        write(SIGNAL_FD, DONE)  # the zygote kills the child on this byte
    finally:
        exit_now(0)


class ReleaseModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """In a child: the release's modules as the zygote imported them, instead of importing them again.

    Importing them cost each child about 2 ms (`bench.sandbox_bench`), mostly copy-on-write faults.  They are handed out
    all together, once, at the first import of any of them, and only while the child's run is
    what the zygote's import was: none of them imported yet, each file unchanged, and each name
    still found at the same file.  Otherwise (the submission rewrote one, changed sys.path,
    removed one from sys.modules to import it afresh) this steps aside and Python imports the
    files as usual; `importlib.reload` always does.
    """

    def __init__(self, modules: dict[str, tuple[types.ModuleType, str, bytes]]) -> None:
        self.modules = modules  # name -> (module, its file as the child sees it, the file's bytes)
        self.handed_out = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if self.handed_out or name not in self.modules or not self._as_imported():
            return None
        self.handed_out = True
        for other, (module, _, _) in self.modules.items():
            if other != name:
                sys.modules[other] = module
        return importlib.util.spec_from_loader(name, self, origin=self.modules[name][1])

    def _as_imported(self) -> bool:
        for name, (_, file, source) in self.modules.items():
            if name in sys.modules:
                return False
            if "." not in name:
                spec = importlib.machinery.PathFinder.find_spec(name)
                if spec is None or spec.origin != file:
                    return False
            try:
                with open(file, "rb") as f:
                    if f.read() != source:
                        return False
            except OSError:
                return False
        return True

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.modules[spec.name][0]

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # executed in the zygote


MADV_COLLAPSE = 25  # Linux 6.1: turn a range into transparent huge pages now
HUGE_PAGE = 2 << 20


def collapse_into_huge_pages() -> None:
    """Move the zygote's private anonymous memory (the heap of the preloaded modules) into 2 MB pages.

    Every fork copies the page table entries of the zygote's written memory, and every child's
    exit tears its copy down again: with 4 kB pages that is about 13,000 entries a run, a
    millisecond or more of kernel time per submission.  A 2 MB page is one entry.  A child
    that writes into one (a reference count, an allocation) gets only that 4 kB copied, as
    before: the kernel splits a shared huge page on its first copy-on-write fault.  The
    zygote's own writes while a child lives split the pages they touch too, and those stay
    split: with the course's preload about 14 of the 52 MB stay huge after the first hundred
    runs (measured with 1,500), which still saves a quarter of the copying.

    MADV_COLLAPSE works whatever the machine's THP setting (short of "never") and leaves the
    ranges' policy alone, so memory the children allocate later stays in ordinary pages.  On
    a kernel without it (before 6.1) madvise fails and nothing changes.
    """
    with open("/proc/self/maps", encoding="ascii") as maps:
        lines = maps.readlines()  # read all first: collapsing changes the mappings
    for line in lines:
        fields = line.split()
        perms, name = fields[1], (fields[5] if len(fields) > 5 else "")
        if perms[:2] != "rw" or perms[3] != "p" or name not in ("", "[heap]"):
            continue  # files, the stack, shared and read-only memory stay as they are
        start, end = (int(x, 16) for x in fields[0].split("-"))
        low, high = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
        if high > low:
            _libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), MADV_COLLAPSE)


def _close_from(lowest: int) -> None:
    """Close every fd >= lowest (close_range(2): one syscall, and no /proc needed)."""
    if _libc.close_range(ctypes.c_uint(lowest), ctypes.c_uint(0xFFFFFFFF), 0) != 0:
        os.closerange(lowest, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def _load_beside(name: str) -> types.ModuleType:
    """coursekit/sandbox/<name>.py (the child's runner, its shell), loaded from its file by the
    zygote (which runs with -I and imports nothing from the coursekit package), before any child
    is forked."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"coursekit{name}", path)
    if spec is None or spec.loader is None:  # a .py path always has a loader: this is a broken install
        raise ImportError(f"coursekit's sandbox runner cannot be loaded from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    zygote_main(sys.argv)
