"""The grader's sandbox: bubblewrap for the file system and the network, rlimits, and a seccomp filter.

Used by tools/grade.py (the parent: ``command`` and ``limits_preexec``) and tools/grade_child.py (inside the
sandbox: ``install_seccomp``).  Each graded process gets

* bubblewrap (``bwrap``): new user, pid, network, IPC and UTS namespaces (no network at all), an empty root
  with read-only binds of the system libraries, the Python installation, the virtual environment, the course's
  ``course_lib`` and the two grader scripts, the data directory read-only, and throwaway size-limited tmpfs
  for ``/tmp`` and the home directory (also the working directory), and a private writable view of the data's
  ``cache/`` folder.  Nothing else of the machine is visible:
  not the instructor's home, not ``solutions/`` (hidden tests), not ``.git``, not the other submissions, not
  the grades;
* rlimits: CPU seconds, address space (memory), size of any file written, no core dumps, and (for a non-root
  instructor) a cap on the user's processes;
* seccomp (installed by the child itself, after its trusted imports, before any submitted code runs): no new
  process can be created (``fork``, ``vfork``, ``execve``; ``clone`` only for threads), and for the test
  phase also no new thread and no signal handler (``rt_sigaction``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HOME = "/home/student"  # the sandbox's private home and working directory (a tmpfs)
RO_CACHE = "/run/instructor-cache"  # where the sandbox sees the real cache folder, read-only
ROOT = Path(__file__).resolve().parents[1]
INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `sudo apt install bubblewrap`; Fedora: `sudo dnf install bubblewrap`; "
    "Arch: `sudo pacman -S bubblewrap`). On Ubuntu 23.10+ AppArmor may block unprivileged user namespaces: "
    "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or grade as root. To grade without any "
    "sandbox anyway (submissions then run as you, with your files and network), add UNSAFE_NO_SANDBOX=1 to "
    "`make grade` (--no-sandbox); every feedback file then says so.")


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create its namespaces here (the message says how to fix it)."""


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits (seconds and bytes)."""

    cpu_s: int = 600
    memory_bytes: int = 6 << 30  # address space: torch with its libraries maps ~3.5 GiB before any tensor
    file_bytes: int = 64 << 20  # the largest file a submission may write
    tmpfs_bytes: int = 256 << 20  # /tmp and the home directory, each
    cache_bytes: int = 1 << 30  # new files in the private view of the data's cache folder


def limits_preexec(limits: Limits):
    """A ``preexec_fn`` that applies ``limits`` to the child (bwrap and everything it starts inherit them)."""

    nproc = None
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC; seccomp forbids new processes either way
        uid = os.getuid()
        mine = sum(1 for p in Path("/proc").glob("[0-9]*") if _owner(p) == uid)
        nproc = mine + 256

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


def _bind_system(args: list[str]) -> None:
    """System libraries and the few /etc files a Python process needs (not /etc/shadow, not /home)."""
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "fonts",
                 "ssl", "mime.types", "nsswitch.conf", "passwd", "group"):
        path = f"/etc/{name}"
        if os.path.exists(path):
            args += ["--ro-bind", path, path]


def python() -> str:
    """This interpreter, by a path the sandbox can see: its folder resolved (a virtual environment reached
    through a symlink is bound at its real path), its file name kept (so the environment stays active)."""
    return os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))


def _python_paths() -> list[str]:
    """The interpreter's installation and the virtual environment (resolved, deduplicated, outermost first)."""
    python_bin = os.path.dirname(os.path.realpath(sys.executable))
    paths = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, python_bin)}
    keep = sorted(paths, key=len)
    return [p for i, p in enumerate(keep) if not any(p.startswith(q.rstrip("/") + "/") for q in keep[:i])]


def command(argv: list[str], env: dict[str, str], data_dir: Path | None, limits: Limits) -> list[str]:
    """The bwrap command line that runs ``argv`` in the sandbox with exactly ``env``."""
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--dev", "/dev", "--proc", "/proc",  # the tmpfs first: a bind below /tmp (CI's data copy) stays visible
            "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
            "--size", str(limits.tmpfs_bytes), "--tmpfs", HOME, "--chdir", HOME]
    _bind_system(args)
    for path in _python_paths():
        args += ["--ro-bind", path, path]
    for rel in ("course_lib", "tools/grade_child.py", "tools/sandbox.py"):
        path = str(ROOT / rel)
        args += ["--ro-bind", path, path]
    if data_dir is not None and data_dir.is_dir():
        args += ["--ro-bind", str(data_dir), str(data_dir)]
        args += _private_cache(data_dir / "cache", limits)
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--remount-ro", "/", "--", *argv]  # the root itself read-only: only the two tmpfs are writable


def _private_cache(cache: Path, limits: Limits, max_files: int = 5000) -> list[str]:
    """course_lib caches built datasets and trained models in ``<data>/cache``: the sandbox sees a private,
    writable copy-on-write view of it, so a notebook reuses the instructor's caches and writes its own without
    touching them.  The view is a tmpfs of symlinks into one read-only bind of the real folder (``RO_CACHE``):
    reading follows a link, writing a file (new, or atomically replacing one) changes only the tmpfs, and
    writing into an instructor's file fails (read-only).  Links, not one bind per file: each bind is a mount,
    and a thousand of them made every sandbox start take seconds."""
    if not cache.is_dir():
        return []
    files = [p for p in cache.rglob("*") if p.is_file() and not p.is_symlink()]
    if len(files) > max_files:
        return []  # read-only as part of the data directory (and three arguments per file stay under ARG_MAX)
    args = ["--ro-bind", str(cache), RO_CACHE, "--size", str(limits.cache_bytes), "--tmpfs", str(cache)]
    for folder in sorted({p.parent for p in files} - {cache}):
        args += ["--dir", str(folder)]
    for path in files:
        args += ["--symlink", f"{RO_CACHE}/{path.relative_to(cache)}", str(path)]
    return args


def probe(limits: Limits) -> None:
    """Raise ``SandboxUnavailable`` (with how to fix it) unless a sandboxed Python starts here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (`bwrap`) is not installed, and the grader will not run submitted code "
                                 "unsandboxed on its own. " + INSTALL_HINT)
    cmd = command([python(), "-c", "import sys; sys.exit(0)"], {"HOME": HOME}, None, limits)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, preexec_fn=limits_preexec(limits))
    except subprocess.TimeoutExpired:
        raise SandboxUnavailable("bwrap did not start a sandboxed Python within 60 s. " + INSTALL_HINT) from None
    if done.returncode != 0:
        why = done.stderr.strip()[:300] or done.returncode
        raise SandboxUnavailable(f"bwrap cannot create its sandbox here ({why}). " + INSTALL_HINT)


# --- seccomp ---------------------------------------------------------------------------------------------------

_ARCH = {  # audit arch, and the syscall numbers the filter names (aarch64 has no fork/vfork)
    "x86_64": (0xC000003E, {"fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone": 56, "clone3": 435,
                            "rt_sigaction": 13, "ptrace": 101}),
    "aarch64": (0xC00000B7, {"execve": 221, "execveat": 281, "clone": 220, "clone3": 435, "rt_sigaction": 134,
                             "ptrace": 117}),
}
_ALLOW, _KILL = 0x7FFF0000, 0x80000000
_EPERM, _ENOSYS = 0x00050000 | 1, 0x00050000 | 38
_CLONE_THREAD = 0x00010000


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def seccomp_program(threads: bool, signals: bool) -> bytes:
    """A BPF filter: no new process, no exec, no ptrace; new threads only if ``threads``; ``rt_sigaction`` only
    if ``signals``.  Other architectures' syscall tables (x32, i386) are refused outright."""
    machine = platform.machine()
    if machine not in _ARCH:
        raise SandboxUnavailable(f"the grader's seccomp filter knows x86_64 and aarch64, not {machine}")
    arch, nr = _ARCH[machine]
    LD, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    prog = [_insn(LD, 0, 0, 4), _insn(JEQ, 1, 0, arch), _insn(RET, 0, 0, _KILL), _insn(LD, 0, 0, 0)]
    if machine == "x86_64":  # the x32 ABI: same arch, syscall numbers with bit 30 set
        prog += [_insn(JGE, 0, 1, 0x40000000), _insn(RET, 0, 0, _KILL)]
    denied = ["fork", "vfork", "execve", "execveat", "ptrace"] + ([] if signals else ["rt_sigaction"])
    for name in denied:
        if name in nr:
            prog += [_insn(JEQ, 0, 1, nr[name]), _insn(RET, 0, 0, _EPERM)]
    # clone3 passes its flags in memory, which BPF cannot read: ENOSYS makes glibc fall back to clone
    prog += [_insn(JEQ, 0, 1, nr["clone3"]), _insn(RET, 0, 0, _ENOSYS if threads else _EPERM)]
    if threads:
        prog += [_insn(JEQ, 0, 4, nr["clone"]), _insn(LD, 0, 0, 16),  # args[0], low 32 bits: the flags
                 _insn(JSET, 0, 1, _CLONE_THREAD), _insn(RET, 0, 0, _ALLOW), _insn(RET, 0, 0, _EPERM)]
    else:
        prog += [_insn(JEQ, 0, 1, nr["clone"]), _insn(RET, 0, 0, _EPERM)]
    return b"".join(prog + [_insn(RET, 0, 0, _ALLOW)])


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp(threads: bool, signals: bool) -> None:
    """Apply ``seccomp_program`` to this process (irreversible; inherited by its threads)."""
    program = seccomp_program(threads, signals)
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    zero = ctypes.c_ulong(0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), zero, zero, zero) != 0 \
            or libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                          ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter refused by the kernel")
