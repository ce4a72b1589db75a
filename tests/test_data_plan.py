"""data.plan: what each lesson reads per profile, what is still to download, and the notes the notebooks print."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from course_lib import data
from course_lib.data import files, plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import download_table  # noqa: E402

MIRROR = Path(os.environ.get("COURSE_DATA_DIR") or ROOT.parent / "shared" / "data")
NOTEBOOKS = download_table.notebooks()
ALL_RESNETS = ["resnet20", "resnet32", "resnet44", "resnet56"]


def test_every_downloadable_file_has_a_size():
    assert set(files.REMOTE) <= set(plan.PUBLISHED_BYTES)


@pytest.mark.skipif(not (MIRROR / "SHA256SUMS").exists(), reason=f"no offline mirror at {MIRROR}")
def test_published_sizes_match_the_mirror():
    checked = 0
    for rel, size in plan.PUBLISHED_BYTES.items():
        if (MIRROR / rel).is_file():
            assert (MIRROR / rel).stat().st_size == size, rel
            checked += 1
    assert checked >= 10


def test_an_empty_directory_needs_downloads(tmp_path):
    quick = data.needs(["cifar10", "mnist_m", "omniglot"], "quick", tmp_path)
    rels = [n.rel for n in quick]
    assert "cifar10/cifar-10-python.tar.gz" in rels and "bsds500/BSR_bsds500.tgz" in rels
    assert not any(n.present for n in quick) and all(n.bytes for n in quick)
    full = [n.rel for n in data.needs(["mnist", "omniglot", "usps"], "full", tmp_path)]
    assert "MNIST/raw/train-images-idx3-ubyte.gz" in full and "omniglot/images_evaluation.zip" in full
    assert "usps/usps.bz2" in full and "omniglot/original_zips/images_background_small1.zip" not in full


def test_files_on_disk_are_measured_and_listed_once(fake_mirror):
    got = data.needs(["mnist", "mnist_m"], "quick")
    assert len({n.rel for n in got}) == len(got)
    images = next(n for n in got if n.rel == "MNIST/raw/t10k-images-idx3-ubyte.gz")
    assert images.present and images.bytes == (fake_mirror / images.rel).stat().st_size
    cifar = data.needs(["cifar10"], "quick")
    assert all(n.present and n.rel.startswith("cifar10/test/") for n in cifar)


def test_medmnist_sizes_and_unknown_items(tmp_path):
    assert [n.rel for n in data.needs(["pneumoniamnist_224", "breastmnist"], "full", tmp_path)] == \
        ["medmnist/pneumoniamnist_224.npz", "medmnist/breastmnist.npz"]
    for bad in ("pneumoniamnist_100", "imagenet", "resnet18", "cifar100"):
        with pytest.raises(ValueError, match="Unknown item"):
            data.needs([bad], "quick", tmp_path)


def test_note_names_the_running_profile_and_how_to_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    note = data.profile_note(["cifar10"], profile="quick", data_dir=tmp_path)
    assert note.startswith("Profile: quick") and 'course_lib.setup("quick")' in note
    assert re.search(r"quick \(this run\).*downloads ≈ 163 MiB: cifar-10-python\.tar\.gz", note)
    note = data.profile_note(["pneumoniamnist"], full=["pneumoniamnist_224", "imagenet-resnet18"],
                             profile="full", data_dir=tmp_path)
    assert re.search(r"full \(this run\).*pneumoniamnist_224\.npz \(204 MiB\)", note)
    assert "resnet18-f37072fd.pth" in note and "pneumoniamnist.npz (4 MiB)" in note


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_prints_what_it_reads(path):
    """The note sits in the setup cell and covers every dataset and checkpoint the notebook loads."""
    source = path.read_text()
    quick, full = download_table.note_items(source)
    setup = source.index("cfg = course_lib.setup(")
    assert source.index("profile_note(") - setup < 400, "print the note right under the setup call"
    loaded = set(re.findall(r'data\.load\("([a-z_0-9]+)"', source))
    for target in re.findall(r'digits\.load_pair\("([a-z_]+)"\)', source):
        loaded |= {"mnist", target}
    if "digits.TARGETS" in source:
        loaded |= {"mnist", "mnist_m", "usps"}
    if re.search(r"zoo\.(load|source_outputs|source_images)\(", source):
        loaded |= {"cifar10", "mnist", "omniglot", *ALL_RESNETS}
    loaded |= {f"resnet{d}" for d in re.findall(r"cifar_resnet\((\d+)\)", source)}
    for profile, items in (("quick", quick), ("full", full)):
        have = {re.sub(r"_\d+$", "", i) for i in items}
        assert loaded <= have, f"{profile}: {sorted(loaded - have)} missing from profile_note"
        data.needs(items, profile)  # every item is known


def test_readme_download_table_is_current():
    assert download_table.main(["--check"]) == 0, "run python tools/download_table.py"
