"""The data layer on a synthetic mirror: shapes, splits, checksums, errors and real HTTP downloads."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest
import torch

from course_lib import data
from course_lib.data import datasets, files
from course_lib.data.integrity import ChecksumError, DataMissingError, download


# ------------------------------------------------------------------ carving and readers
def test_carve_partitions_stratified_and_deterministic():
    labels = np.repeat(np.arange(4), 50)
    parts = datasets.carve(labels, {"train": 0.6, "val": 0.1, "test": 0.3})
    allidx = np.concatenate(list(parts.values()))
    assert sorted(allidx.tolist()) == list(range(200))  # a partition: nothing lost or duplicated
    assert [len(parts[s]) for s in ("train", "val", "test")] == [120, 20, 60]
    for s, idx in parts.items():  # each class keeps its share
        counts = np.bincount(labels[idx], minlength=4)
        assert np.all(counts == counts[0]), (s, counts)
    again = datasets.carve(labels, {"train": 0.6, "val": 0.1, "test": 0.3})
    assert all(np.array_equal(parts[s], again[s]) for s in parts)
    other = datasets.carve(labels, {"train": 0.6, "val": 0.1, "test": 0.3}, seed=1)
    assert not np.array_equal(parts["train"], other["train"])


def test_read_idx_rejects_truncated_and_foreign_files(tmp_path):
    import gzip

    good = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = (0x0803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (2, 3, 4))
    (tmp_path / "a.gz").write_bytes(gzip.compress(header + good.tobytes()))
    assert np.array_equal(datasets.read_idx(tmp_path / "a.gz"), good)
    (tmp_path / "b.gz").write_bytes(gzip.compress(header + good.tobytes()[:-3]))
    with pytest.raises(ValueError, match="truncated"):
        datasets.read_idx(tmp_path / "b.gz")
    (tmp_path / "c.gz").write_bytes(gzip.compress(b"\x00\x00\x00\x01" + good.tobytes()))
    with pytest.raises(ValueError, match="not an MNIST idx"):
        datasets.read_idx(tmp_path / "c.gz")


# ------------------------------------------------------------------ load()
EXPECTED = {  # name -> (C, H, W, classes)
    "mnist": (1, 28, 28, 10), "usps": (1, 16, 16, 10), "cifar10": (3, 32, 32, 10), "mnist_m": (3, 28, 28, 10),
    "breastmnist": (1, 28, 28, 2), "retinamnist": (3, 28, 28, 5), "omniglot": (1, 28, 28, None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_returns_float_images_and_int_labels(fake_mirror, name):
    c, h, w, k = EXPECTED[name]
    sizes = []
    for split in data.SPLITS:
        ds = data.load(name, split)
        x, y = ds[0]
        assert x.dtype == torch.float32 and tuple(x.shape) == (c, h, w)
        assert isinstance(y, int)
        assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
        assert ds.labels.dtype == torch.int64 and len(ds.labels) == len(ds)
        if k is not None:
            assert len(ds.classes) == k and int(ds.labels.max()) < k
        sizes.append(len(ds))
        batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
        assert batch[0].shape == (min(4, len(ds)), c, h, w) and batch[1].dtype == torch.int64
    assert all(n > 0 for n in sizes)


def test_quick_carve_partitions_the_mirror_split(fake_mirror):
    total = sum(len(data.load("mnist", s)) for s in data.SPLITS)
    assert total == 100
    train = set(map(bytes, data.load("mnist", "train").data.numpy()))
    test = set(map(bytes, data.load("mnist", "test").data.numpy()))
    assert not (train & test)


def test_omniglot_splits_never_share_an_alphabet(fake_mirror):
    alph = {s: {c.split("/")[0] for c in data.load("omniglot", s).classes} for s in data.SPLITS}
    assert alph["train"] == set(datasets.OMNIGLOT_QUICK["train"])
    assert not (alph["train"] & alph["val"]) and not (alph["train"] & alph["test"]) and not (alph["val"] & alph["test"])
    ds = data.load("omniglot", "train")
    assert float(ds.images.mean()) < 0.5  # strokes bright on a dark background, like MNIST


def test_mnist_m_is_mnist_blended_and_deterministic(fake_mirror):
    mnist, mm = data.load("mnist", "train"), data.load("mnist_m", "train")
    assert torch.equal(mnist.labels, mm.labels)
    photos = datasets.bsds_photos(fake_mirror)
    rebuilt = datasets.blend_mnist_m(mnist.data.numpy(), photos, seed=datasets.MNIST_M_SEED)
    assert np.array_equal(rebuilt, mm.data.numpy())
    assert not np.array_equal(datasets.blend_mnist_m(mnist.data.numpy(), photos, seed=1), rebuilt)


def test_blend_rule_and_shape_errors():
    digits = np.array([[[[0, 255], [128, 10]]]], dtype=np.uint8)  # (1, 1, 2, 2)
    patches = np.stack([np.full((2, 2), v, dtype=np.uint8) for v in (0, 100, 255)])[None]  # (1, 3, 2, 2)
    out = datasets.blend(digits, patches)
    assert out.dtype == np.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, 1].tolist() == [[100, 155], [28, 90]]
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        datasets.blend(digits[:, 0], patches)
    with pytest.raises(ValueError, match="patches must have shape"):
        datasets.blend(digits, patches[:, :2])


def test_bad_names_and_splits(fake_mirror):
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        data.load("svhn", "train")
    with pytest.raises(ValueError, match="Unknown split 'training'"):
        data.load("mnist", "training")
    with pytest.raises(ValueError, match="fixed image size"):
        data.load("mnist", "train", size=64)


def test_image_dataset_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="uint8 tensor"):
        data.ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="uint8 tensor"):
        data.ImageDataset(torch.zeros(2, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="labels must have shape"):
        data.ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), ["a"])


# ------------------------------------------------------------------ integrity and errors
def test_corrupted_file_raises_naming_file_and_checksum(fake_mirror):
    rel = "usps/usps.t.bz2"
    path = fake_mirror / rel
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(ChecksumError) as err:
        data.load("usps", "train")
    msg = str(err.value)
    assert str(path) in msg and files.SHA256[rel] in msg


def test_one_corrupted_png_in_a_folder_is_named(fake_mirror):
    rel = "cifar10/test/cat/cat_s_000002.png"
    (fake_mirror / rel).write_bytes(b"not a png")
    with pytest.raises(ChecksumError, match="cat_s_000002.png"):
        data.load("cifar10", "train")


def test_missing_file_offline_names_dataset_dir_and_env(fake_mirror):
    (fake_mirror / "MNIST/raw/t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataMissingError) as err:
        data.load("mnist", "train")
    msg = str(err.value)
    assert "'mnist'" in msg and str(fake_mirror) in msg and "COURSE_DATA_DIR" in msg


def test_missing_data_dir_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    data._built.cache_clear()
    with pytest.raises(DataMissingError, match="does not exist"):
        data.load("usps", "test", profile="quick")


def test_corrupted_cache_is_refused_not_rebuilt_silently(fake_mirror):
    data.load("cifar10", "train")
    cache = next((fake_mirror / "cache").glob("cifar10_quick_*.pt"))
    cache.write_bytes(cache.read_bytes()[:-10])
    data._built.cache_clear()
    with pytest.raises(ChecksumError, match="Cache file"):
        data.load("cifar10", "train")


# ------------------------------------------------------------------ downloads over real HTTP on 127.0.0.1
@pytest.fixture
def http_server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; yields (base_url, folder)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", www
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_missing_file_is_downloaded_and_verified(fake_mirror, http_server, monkeypatch):
    base, www = http_server
    rel = "usps/usps.t.bz2"
    blob = (fake_mirror / rel).read_bytes()
    (www / "usps.t.bz2").write_bytes(blob)
    (fake_mirror / rel).unlink()
    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setitem(files.REMOTE, rel, (f"{base}/usps.t.bz2", "md5:" + hashlib.md5(blob).hexdigest()))
    ds = data.load("usps", "test")
    assert len(ds) > 0 and (fake_mirror / rel).read_bytes() == blob
    assert not list((fake_mirror / "usps").glob("*.part"))


def test_download_with_wrong_checksum_saves_nothing(tmp_path, http_server):
    base, www = http_server
    (www / "f.bin").write_bytes(b"tampered content")
    dest = tmp_path / "out" / "f.bin"
    with pytest.raises(ChecksumError, match="nothing was saved"):
        download(f"{base}/f.bin", dest, "sha256:" + hashlib.sha256(b"original content").hexdigest())
    assert not dest.exists() and not list(dest.parent.iterdir())


def test_download_unreachable_server_is_a_clear_missing_error(fake_mirror, monkeypatch):
    rel = "usps/usps.t.bz2"
    (fake_mirror / rel).unlink()
    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setitem(files.REMOTE, rel, (f"http://127.0.0.1:{_closed_port()}/usps.t.bz2", "md5:" + "0" * 32))
    with pytest.raises(DataMissingError) as err:
        data.load("usps", "test")
    msg = str(err.value)
    assert "download failed" in msg and "'usps'" in msg and "COURSE_DATA_DIR" in msg


def test_http_404_is_a_missing_error(tmp_path, http_server):
    base, _ = http_server
    with pytest.raises(DataMissingError, match="404"):
        download(f"{base}/nope.bin", tmp_path / "nope.bin", "md5:" + "0" * 32)


def test_package_checksums_match_the_mirror_manifest():
    """The shipped table agrees with the mirror's SHA256SUMS and covers every file the course reads."""
    from pathlib import Path

    sums = Path(__file__).resolve().parents[2] / "shared" / "data" / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"offline mirror not found at {sums}")
    mirror = {rel: d for d, rel in (line.split(None, 1) for line in sums.read_text().splitlines())}
    for rel, digest in files.SHA256.items():
        assert mirror[rel] == digest, rel
    assert len(files.tree("cifar10/test/")) == 10_000
    assert len(files.tree("bsds500/val/")) + len(files.tree("bsds500/test/")) == 300


# ------------------------------------------------------------------ full profile: official archives over HTTP
def _cifar_batch(x: np.ndarray, y: np.ndarray, names: list[str]) -> bytes:
    import pickle

    return pickle.dumps({"data": x.reshape(len(x), -1), "labels": y.tolist(), "filenames": names})


def test_full_profile_downloads_official_cifar_and_orders_test_like_the_mirror(fake_mirror, http_server,
                                                                              monkeypatch):
    """The official tarball gives the same 10-class test images, in the same order, as the PNG folder."""
    import io
    import tarfile

    from PIL import Image

    base, www = http_server
    classes = datasets.CIFAR10_CLASSES
    pngs = sorted((fake_mirror / "cifar10" / "test").rglob("*.png"))
    test_x = np.stack([np.asarray(Image.open(p)) for p in pngs]).transpose(0, 3, 1, 2)
    test_y = np.array([classes.index(p.parent.name) for p in pngs])
    test_names = [p.name for p in pngs]
    shuffle = np.random.default_rng(0).permutation(len(pngs))  # the tarball's order differs from the folder's
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, blob):
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
        add("test_batch", _cifar_batch(test_x[shuffle], test_y[shuffle], [test_names[i] for i in shuffle]))
        rng = np.random.default_rng(1)
        for b in range(1, 6):
            y = np.repeat(np.arange(10), 2)
            add(f"data_batch_{b}", _cifar_batch(rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), y,
                                                [f"train_{b}_{i}.png" for i in range(20)]))
    blob = buf.getvalue()
    (www / "cifar-10-python.tar.gz").write_bytes(blob)
    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.setitem(files.REMOTE, "cifar10/cifar-10-python.tar.gz",
                        (f"{base}/cifar-10-python.tar.gz", "md5:" + hashlib.md5(blob).hexdigest()))
    full = {s: data.load("cifar10", s, profile="full") for s in data.SPLITS}
    assert [len(full[s]) for s in data.SPLITS] == [90, 10, 50]
    assert (fake_mirror / "cifar10" / "cifar-10-python.tar.gz").exists()
    # quick, from the tarball only: identical to quick from the PNG folder
    quick_png = torch.cat([data.load("cifar10", s).data for s in data.SPLITS])
    import shutil

    shutil.rmtree(fake_mirror / "cifar10" / "test")
    shutil.rmtree(fake_mirror / "cache")
    data._built.cache_clear()
    quick_tar = torch.cat([data.load("cifar10", s).data for s in data.SPLITS])
    assert torch.equal(quick_png, quick_tar)


def test_full_profile_mnist_and_usps_use_the_official_train_files(fake_mirror, http_server, monkeypatch):
    base, www = http_server
    for rel in ("MNIST/raw/t10k-images-idx3-ubyte.gz", "MNIST/raw/t10k-labels-idx1-ubyte.gz"):
        name = rel.split("/")[-1].replace("t10k", "train")
        blob = (fake_mirror / rel).read_bytes()
        (www / name).write_bytes(blob)
        monkeypatch.setitem(files.REMOTE, f"MNIST/raw/{name}",
                            (f"{base}/{name}", "md5:" + hashlib.md5(blob).hexdigest()))
    blob = (fake_mirror / "usps/usps.t.bz2").read_bytes()
    (www / "usps.bz2").write_bytes(blob)
    monkeypatch.setitem(files.REMOTE, "usps/usps.bz2", (f"{base}/usps.bz2", "md5:" + hashlib.md5(blob).hexdigest()))
    monkeypatch.delenv("COURSE_OFFLINE")
    assert [len(data.load("mnist", s, profile="full")) for s in data.SPLITS] == [90, 10, 100]
    assert [len(data.load("usps", s, profile="full")) for s in data.SPLITS] == [90, 10, 100]
    assert [len(data.load("mnist_m", s, profile="full")) for s in data.SPLITS] == [90, 10, 100]


def _zip_of_characters(top: str, alphabets: list[str]) -> bytes:
    import io
    import zipfile

    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for a in alphabets:
            for d in range(1, 3):
                img = Image.new("L", (105, 105), 255)
                out = io.BytesIO()
                img.save(out, format="PNG")
                z.writestr(f"{top}/{a}/character01/0001_{d:02d}.png", out.getvalue())
    return buf.getvalue()


def test_full_profile_omniglot_splits_background_and_evaluation(fake_mirror, http_server, monkeypatch):
    base, www = http_server
    background = [f"BgAlphabet{i}" for i in range(12)]
    for name, alphabets in (("images_background", background), ("images_evaluation", ["EvalA", "EvalB"])):
        blob = _zip_of_characters(name, alphabets)
        (www / f"{name}.zip").write_bytes(blob)
        monkeypatch.setitem(files.REMOTE, f"omniglot/{name}.zip",
                            (f"{base}/{name}.zip", "md5:" + hashlib.md5(blob).hexdigest()))
    monkeypatch.delenv("COURSE_OFFLINE")
    alph = {s: {c.split("/")[0] for c in data.load("omniglot", s, profile="full").classes} for s in data.SPLITS}
    assert alph["test"] == {"EvalA", "EvalB"}
    assert len(alph["train"]) == 10 and len(alph["val"]) == 2 and not (alph["train"] & alph["val"])


def test_bsds_photos_are_extracted_from_the_official_archive_and_verified(fake_mirror, http_server, monkeypatch):
    import io
    import shutil
    import tarfile

    base, www = http_server
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in files.tree("bsds500/"):
            split, name = rel.split("/")[1:]
            blob = (fake_mirror / rel).read_bytes()
            info = tarfile.TarInfo(f"BSR/BSDS500/data/images/{split}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    (www / "BSR_bsds500.tgz").write_bytes(buf.getvalue())
    expected = datasets.bsds_photos(fake_mirror)
    shutil.rmtree(fake_mirror / "bsds500")
    monkeypatch.setattr(files, "BSDS_URL", f"{base}/BSR_bsds500.tgz")
    monkeypatch.delenv("COURSE_OFFLINE")
    got = datasets.bsds_photos(fake_mirror)
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
