"""Which files each dataset needs, where they come from, and what their checksums are.

The data directory has the layout of the offline mirror (``../shared/data``, see its MANIFEST.md):

    MNIST/raw/*.gz              usps/usps.t.bz2            cifar10/test/<class>/*.png
    medmnist/<flag>.npz         checkpoints/resnetNN-*.th  bsds500/{val,test}/*.jpg
    omniglot/original_zips/*.zip

``SHA256SUMS`` (shipped with this package) holds the sha256 of every mirror file the course reads.
Files that only the ``full`` profile needs are official archives, checked with their publishers' md5.
"""

from __future__ import annotations

import os
import tarfile
from importlib import resources
from pathlib import Path

from .integrity import DataMissingError, download, offline, verify_file


def _load_sums() -> dict[str, str]:
    text = resources.files(__package__).joinpath("SHA256SUMS").read_text()
    return {rel: digest for digest, rel in (line.split(None, 1) for line in text.splitlines() if line.strip())}


SHA256: dict[str, str] = _load_sums()

_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_USPS = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
_OMNI = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
_RESNET = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"

#: relative path -> (url, checksum).  A bare digest is sha256 (looked up in SHA256SUMS); "md5:..." is
#: the publisher's md5 (torchvision's ``resources`` tables) for archives the mirror does not hold.
REMOTE: dict[str, tuple[str, str]] = {
    "MNIST/raw/t10k-images-idx3-ubyte.gz": (
        _MNIST + "t10k-images-idx3-ubyte.gz", "md5:9fb629c4189551a2d022fa330f9573f3"),
    "MNIST/raw/t10k-labels-idx1-ubyte.gz": (
        _MNIST + "t10k-labels-idx1-ubyte.gz", "md5:ec29112dd5afa0611ce80d1b7f02629c"),
    "MNIST/raw/train-images-idx3-ubyte.gz": (
        _MNIST + "train-images-idx3-ubyte.gz", "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "MNIST/raw/train-labels-idx1-ubyte.gz": (
        _MNIST + "train-labels-idx1-ubyte.gz", "md5:d53e105ee54ea40749a09fcbcd1e9432"),
    "usps/usps.t.bz2": (_USPS + "usps.t.bz2", "md5:8ea070ee2aca1ac39742fdd1ef5ed118"),
    "usps/usps.bz2": (_USPS + "usps.bz2", "md5:ec16c51db3855ca6c91edd34d0e9b197"),
    "cifar10/cifar-10-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                                       "md5:c58f30108f718f92721af3b95e74349a"),
    "omniglot/original_zips/images_background_small1.zip": (_OMNI + "images_background_small1.zip",
                                                            "md5:e704a628b5459e08445c13499850abc4"),
    "omniglot/original_zips/images_background_small2.zip": (_OMNI + "images_background_small2.zip",
                                                            "md5:b75a71a51d3b13f821f212756fe481fd"),
    "omniglot/images_background.zip": (_OMNI + "images_background.zip", "md5:68d2efa1b9178cc56df9314c21c6e718"),
    "omniglot/images_evaluation.zip": (_OMNI + "images_evaluation.zip", "md5:6b91aef0f799c5bb55b94e3f2daec811"),
    **{f"checkpoints/{f}": (_RESNET + f, "") for f in
       ("resnet20-12fca82f.th", "resnet32-d509ac18.th", "resnet44-014dd654.th", "resnet56-4bfd9763.th")},
}

#: BSDS500 publishes no checksum for its archive; each extracted photo is checked against SHA256SUMS.
BSDS_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"


def expected_checksum(rel: str, remote: tuple[str, str] | None = None) -> str:
    """The checksum a file under the data directory must have ("md5:..." or a sha256 digest)."""
    if rel in SHA256:
        return SHA256[rel]
    remote = remote or REMOTE.get(rel)
    if remote and remote[1]:
        return remote[1]
    raise KeyError(f"No checksum is known for {rel!r}; the course never reads unverified files.")


def tree(prefix: str) -> list[str]:
    """All checksummed files under a folder of the mirror, e.g. ``tree("cifar10/test/")``."""
    return sorted(rel for rel in SHA256 if rel.startswith(prefix))


def missing_error(dataset: str, root: Path, rel: str, why: str = "") -> DataMissingError:
    env = os.environ.get("COURSE_DATA_DIR")
    where = f"COURSE_DATA_DIR={env}" if env else "COURSE_DATA_DIR is not set, so the default cache is used"
    if not root.exists():
        where += "; that directory does not exist"
    return DataMissingError(
        f"Dataset {dataset!r}: {rel} is missing from the data directory {root} ({where}).\n"
        f"{why}\nFix: point COURSE_DATA_DIR at a copy of the course's data mirror (layout in "
        f"../shared/data/MANIFEST.md), or run once with internet access so that the course downloads it.")


def ensure(root: Path, rel: str, dataset: str, remote: tuple[str, str] | None = None) -> Path:
    """Return ``root/rel`` after checking its checksum; download it first if it is missing.

    ``remote``: ``(url, checksum)`` for files outside ``REMOTE`` (MedMNIST sizes come from ``medmnist.INFO``).
    """
    path = root / rel
    remote = remote or REMOTE.get(rel)
    if path.exists():
        return verify_file(path, expected_checksum(rel, remote))
    if remote is None:
        raise missing_error(dataset, root, rel, "It cannot be downloaded on its own.")
    if offline():
        raise missing_error(dataset, root, rel, "COURSE_OFFLINE=1, so no download was attempted.")
    try:
        return download(remote[0], path, expected_checksum(rel, remote))
    except DataMissingError as err:
        raise missing_error(dataset, root, rel, f"The download failed (offline?): {err}") from None


def ensure_tree(root: Path, prefix: str, dataset: str) -> list[Path]:
    """Verify every file of a mirror folder (e.g. ``cifar10/test/``); a missing file is an error."""
    rels = tree(prefix)
    paths = []
    for rel in rels:
        path = root / rel
        if not path.exists():
            raise missing_error(dataset, root, rel, f"The folder {prefix} must hold all {len(rels):,} files.")
        paths.append(verify_file(path, SHA256[rel]))
    return paths


def ensure_bsds(root: Path) -> list[Path]:
    """The 300 verified BSDS500 val+test photos; downloads and unpacks the official archive if needed."""
    rels = tree("bsds500/val/") + tree("bsds500/test/")
    if not all((root / rel).exists() for rel in rels):
        if offline():
            raise missing_error("bsds500", root, "bsds500/val/", "COURSE_OFFLINE=1, so no download was attempted.")
        archive = root / "bsds500" / "BSR_bsds500.tgz"
        if not archive.exists():
            try:
                download(BSDS_URL, archive, expected=None)  # no published checksum; members checked below
            except DataMissingError as err:
                raise missing_error("bsds500", root, "bsds500/val/", f"The download failed (offline?): {err}") from None
        _extract_bsds(archive, root)
    return ensure_tree(root, "bsds500/val/", "bsds500") + ensure_tree(root, "bsds500/test/", "bsds500")


def _extract_bsds(archive: Path, root: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) >= 2 and parts[-2] in ("val", "test") and parts[-1].endswith(".jpg") and "images" in parts:
                rel = f"bsds500/{parts[-2]}/{parts[-1]}"
                if rel in SHA256:
                    dest = root / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(tar.extractfile(member).read())
