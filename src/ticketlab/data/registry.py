"""The datasets ticketlab knows: shapes, normalisation, the official files with their md5s, and where to fetch them.

The md5 of each official file is embedded here, so a copy is verified wherever it comes from. idx files
carry two: the md5 of the published ``.gz`` and the md5 of its decompressed content, because a
recompressed copy (the Debian package rewrites the gzip header) or a rebuilt one (the PyPI route) holds
the official bytes inside a different ``.gz`` or none at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketlab import TicketlabError
from ticketlab.data import routes, synthetic


@dataclass(frozen=True)
class OfficialFile:
    """One file of a dataset folder, named as its publisher names it, relative to ``<data dir>/<dataset>/``."""

    name: str
    md5: str                   # md5 of the file as published
    raw_md5: str | None = None  # md5 of the decompressed content of a ``.gz``

    @property
    def plain_name(self) -> str | None:
        """The name of the decompressed copy, which is accepted in place of the ``.gz``."""
        return self.name[: -len(".gz")] if self.raw_md5 and self.name.endswith(".gz") else None


@dataclass(frozen=True)
class DatasetDef:
    """A dataset: what it looks like and where its official bytes come from."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    mean: tuple[float, ...]     # per channel, of pixels / 255, over the official training set
    std: tuple[float, ...]
    format: str                 # 'idx', 'cifar', 'imagefolder' or 'synthetic'
    files: tuple[OfficialFile, ...] = ()
    system_dirs: tuple[str, ...] = ()   # read-only copies installed by an OS package, tried after the cache
    routes: tuple[routes.Route, ...] = ()  # ways to fetch the files into the cache, tried in order
    sizes: tuple[int, int] = (0, 0)     # official (training, test) examples, for estimates made without the files


def _idx_files(md5s: dict[str, tuple[str, str]]) -> tuple[OfficialFile, ...]:
    return tuple(OfficialFile(f"{stem}.gz", gz, raw) for stem, (gz, raw) in md5s.items())


# Order matters: readers take the files in this order (train images, train labels, test images, test labels).
MNIST_FILES = _idx_files({
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
})

FASHION_MNIST_FILES = _idx_files({
    "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", "9018921c3c673c538a1fc5bad174d6f9"),
    "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", "8181f5470baa50b63fa0f6fddb340f0a"),
    "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", "15d484375f8d13e6eb1aabb0c3f46965"),
})

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_FILES = tuple(OfficialFile(f"{CIFAR10_DIR}/{name}", md5) for name, md5 in {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}.items())
CIFAR10_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

_SYNTHETIC_SIZES = (synthetic.TRAIN_SIZE, synthetic.TEST_SIZE)

DATASETS: dict[str, DatasetDef] = {d.name: d for d in (
    DatasetDef("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), "idx", MNIST_FILES,
               routes=(routes.Mirrors(_MNIST_MIRRORS), routes.MnistHub()), sizes=(60000, 10000)),
    DatasetDef("fashion_mnist", (1, 28, 28), 10, (0.2860,), (0.3530,), "idx", FASHION_MNIST_FILES,
               system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian: dataset-fashion-mnist
               routes=(routes.Mirrors(_FASHION_MIRRORS),), sizes=(60000, 10000)),
    DatasetDef("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), "cifar",
               CIFAR10_FILES,
               routes=(routes.Tarball("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                                      CIFAR10_TARBALL_MD5),), sizes=(50000, 10000)),
    # ILSVRC-2012 as folders of JPEGs, decoded per batch (imagefolder.py); [EXT-a]'s normalisation (PROTOCOL §1.7)
    DatasetDef("imagenet", (3, 224, 224), 1000, (0.48145466, 0.4578275, 0.40821073),
               (0.26862954, 0.26130258, 0.27577711), "imagefolder", sizes=(1_281_167, 50_000)),
    # Generated in-process (see synthetic.py); mean/std were measured on the generated training set.
    DatasetDef("synthetic", (1, 28, 28), 10, (0.5,), (0.334,), "synthetic", sizes=_SYNTHETIC_SIZES),
    DatasetDef("synthetic_rgb", (3, 32, 32), 10, (0.5, 0.5, 0.5), (0.334, 0.334, 0.334), "synthetic",
               sizes=_SYNTHETIC_SIZES),
)}


def get(name: str) -> DatasetDef:
    """The dataset called ``name``; an unknown name is an error listing the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise TicketlabError(f"unknown dataset {name!r}; set data.dataset to one of {sorted(DATASETS)}") from None
