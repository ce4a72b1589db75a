"""The course's one disk cache: ``<data_dir>/cache/<folder>/<key>.v<version>``, atomic and checksummed.

Everything slow that the course computes once (decoded datasets, the zoo's sources and their outputs, the
digit runs, the grids of lessons 02, 06 and 07) is stored here:

* ``path_for(name, key)`` places an entry: ``name`` picks its folder and version in ``STORES``, the one
  place where a cache's version lives (bump it when what the cache stores changes: old files are then
  never read again);
* ``save_stamped`` writes a file atomically (a temporary file, then a rename: never a half-written file)
  with a ``<file>.sha256`` stamp beside it; ``load_stamped`` checks the stamp and refuses a corrupted
  entry with ``ChecksumError`` instead of silently recomputing over it.  Both hold a lock on the folder
  (``flock``: shared to read, exclusive to write), so a process that reads while another writes the same
  entry never sees a new file beside an old stamp;
* ``cached(path, build)`` is the whole pattern: the stored value on a hit, else ``build()`` once, stored.

>>> cached(path_for("zoo", "mnist-resnet20_quick_cpu1t"), build)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

try:
    import fcntl
except ImportError:  # Windows: entries are still atomic, but a concurrent reader is not kept out
    fcntl = None

from .. import config
from .integrity import ChecksumError, file_digest

T = TypeVar("T")

_ZOO = "2"
#: every cache: name -> (folder under ``<data_dir>/cache``, version in its file names)
STORES: dict[str, tuple[str, str]] = {
    "datasets": ("", "1"),  # data.load's decoded splits, directly in <data_dir>/cache
    "zoo": ("zoo", _ZOO),  # the course-made zoo sources
    "zoo_outputs": ("zoo", f"{_ZOO}.1"),  # their outputs: retraining the sources invalidates these too
    "digits": ("digits", "2"),  # adaptation.digits runs
    "kd_curves": ("kd_curves", "1"),  # one folder per recipe, one file per run
    "label_curves": ("curves", "1"),
    "meta_grid": ("meta_grid", "1"),
    "strategy_grid": ("strategy_grid", "1"),
}


def path_for(name: str, key: str, data_dir: str | Path | None = None, suffix: str = ".pt") -> Path:
    """``<data_dir>/cache/<folder>/<key>.v<version><suffix>`` of cache ``name`` (see ``STORES``); ``suffix=""``
    names a folder of entries.  ``data_dir`` defaults to ``config.data_dir()``."""
    if name not in STORES:
        raise ValueError(f"Unknown cache {name!r}; choose one of {list(STORES)}")
    folder, version = STORES[name]
    root = Path(data_dir) if data_dir is not None else config.data_dir()
    return root / "cache" / folder / f"{key}.v{version}{suffix}"


def atomic_write(path: Path, write: Callable[[str], Any]) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it to ``path``; nothing is left on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_text(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_save(obj: Any, path: Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: never a half-written file.

    Saved through a file object: given a path, ``torch.save`` names the archive's records after it (here a
    random temporary name), so the same value would give different bytes each time."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
    return atomic_write(path, write)


@contextlib.contextmanager
def _folder_lock(folder: Path, exclusive: bool) -> Iterator[None]:
    """Hold ``flock`` on ``folder`` (shared or exclusive) for the block.  Where there is nothing to lock (no
    ``fcntl``, a folder that does not exist yet, a file system without ``flock``) the block runs unlocked."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        fd = None
    if fd is None:  # (yielding outside the except clause keeps its error out of the block's tracebacks)
        yield
        return
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_stamped(obj: Any, path: Path) -> Path:
    """``atomic_save`` plus a ``<name>.sha256`` stamp beside it (also atomic), which ``load_stamped`` checks;
    the pair is written under the folder's exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent, exclusive=True):
        atomic_save(obj, path)
        atomic_write_text(f"{file_digest(path)}  {path.name}\n", _stamp(path))
    return path


def load_stamped(path: Path) -> Any:
    """What ``save_stamped`` wrote (tensors on the CPU), or ``None`` if neither the file nor its stamp exists.

    A file without its stamp (or the reverse), or one whose sha256 differs from the stamp, raises
    ``ChecksumError`` naming the file: a corrupted cache is reported, never silently recomputed over.
    Read under the folder's shared lock (a concurrent ``save_stamped`` of the entry waits, or is waited for).
    """
    with _folder_lock(path.parent, exclusive=False):
        return _load_checked(path)


def _load_checked(path: Path) -> Any:
    stamp = _stamp(path)
    if not (path.exists() or stamp.exists()):
        return None
    if not (path.exists() and stamp.exists()):
        raise ChecksumError(f"Cache entry {path} is incomplete: it or its stamp {stamp.name} is missing. "
                            "Delete both files to recompute it.")
    want = stamp.read_text().split()[0]
    if file_digest(path) != want:
        raise ChecksumError(f"Cache file {path} does not match its checksum {want} (recorded in {stamp}). "
                            "Delete both files to recompute it.")
    return torch.load(path, map_location="cpu", weights_only=False)


def cached(path: Path, build: Callable[[], T]) -> T:
    """The value stored at ``path`` (a hit never calls ``build``); on a miss ``build()`` once, stored with
    ``save_stamped``.  A read-only cache folder only costs the rebuild next time (a note is printed);
    a corrupted entry raises ``ChecksumError`` (``load_stamped``)."""
    saved = load_stamped(path)
    if saved is not None:
        return saved
    value = build()
    try:
        save_stamped(value, path)
    except OSError as err:
        print(f"note: could not cache {path.name} in {path.parent} ({err})")
    return value
