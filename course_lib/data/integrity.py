"""Checksums and downloads: a file is either verified or refused, never used silently.

Every file the course reads has an expected checksum (sha256 for the offline mirror's files,
the publisher's md5 for official archives the mirror lacks).  Downloads go to a temporary name
and are renamed into place only after their checksum matched.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm


class DataError(RuntimeError):
    """Base class for the data layer's errors."""


class ChecksumError(DataError):
    """A file exists but its content is not what the course expects (corrupted or truncated)."""


class DataMissingError(DataError, FileNotFoundError):
    """A file is missing and could not be downloaded."""


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def parse_checksum(expected: str) -> tuple[str, str]:
    """``"md5:abc..."`` or a bare 64-hex sha256 -> ``(algorithm, hexdigest)``."""
    if ":" in expected:
        algo, digest = expected.split(":", 1)
    else:
        algo, digest = "sha256", expected
    if algo not in ("sha256", "md5"):
        raise ValueError(f"Unsupported checksum algorithm {algo!r}")
    return algo, digest.lower()


def verify_file(path: Path, expected: str) -> Path:
    """Raise ``ChecksumError`` unless ``path`` has the checksum ``expected``; return ``path``."""
    algo, want = parse_checksum(expected)
    got = file_digest(path, algo)
    if got != want:
        raise ChecksumError(
            f"Checksum mismatch for {path}\n  expected {algo} {want}\n  found    {algo} {got} "
            f"({path.stat().st_size:,} bytes)\nThe file is corrupted or truncated. Delete it and copy it "
            f"again from the offline mirror, or let the course download it again.")
    return path


def offline() -> bool:
    """True when ``COURSE_OFFLINE=1``: never try the network."""
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def download(url: str, dest: Path, expected: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it against ``expected``.

    The bytes go to a temporary file beside ``dest``; only a file whose checksum matches is renamed
    to ``dest``.  A network failure raises ``DataMissingError``; a wrong checksum ``ChecksumError``.
    ``expected=None`` is only for archives without a published checksum whose members are verified.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if offline():
        raise DataMissingError(f"{dest.name} is missing and COURSE_OFFLINE=1 forbids downloading it from {url}")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "transfer-course/1.0"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}",
                          leave=False) as bar:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
                        bar.update(len(block))
        try:
            if expected is not None:
                verify_file(tmp, expected)
        except ChecksumError as err:
            raise ChecksumError(f"Downloaded {url} but its checksum is wrong; nothing was saved.\n{err}") from None
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError) as err:
        if isinstance(err, DataError):
            raise
        raise DataMissingError(f"Could not download {url}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return dest

