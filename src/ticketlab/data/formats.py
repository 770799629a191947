"""Readers for the on-disk formats of the datasets: gzip'd idx (MNIST, Fashion-MNIST) and CIFAR python batches.

Every reader takes the file's bytes plus its path (for messages) and turns any malformed input into a
``TicketlabError`` naming the file, so a truncated download never surfaces as a raw traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ticketlab import TicketlabError

# The only globals a pickle of numpy arrays needs. Pickles may come from unofficial copies or from a
# package index, and unpickling arbitrary globals would run arbitrary code.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}

_IDX_DTYPES = {0x08: np.uint8}  # the idx type codes the datasets use (unsigned byte)


@dataclass
class RawData:
    """A dataset as stored: uint8 images ``[N, C, H, W]`` and int64 labels, official train and test sets."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def corrupt(path: Path | str, why: str) -> TicketlabError:
    """The error for a file that cannot be parsed: it is never loadable, official or not."""
    return TicketlabError(f"{path} is truncated or corrupt ({why}); delete it and re-download, "
                          f"or replace it with the official file")


def gunzip(data: bytes, path: Path | str) -> bytes:
    """Decompress gzip bytes; a truncated or damaged stream is a ``TicketlabError``."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise corrupt(path, f"gzip: {exc}") from None


def parse_idx(data: bytes, path: Path | str) -> np.ndarray:
    """Parse idx bytes (the MNIST format: zero, type code, rank, big-endian int32 dims, then the values)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise corrupt(path, "not an idx file: bad magic number")
    code, rank = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise corrupt(path, f"unsupported idx type code 0x{code:02x}")
    header = 4 + 4 * rank
    if len(data) < header:
        raise corrupt(path, "idx header cut short")
    dims = struct.unpack(f">{rank}i", data[4:header])
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise corrupt(path, f"idx dims {dims} need {expected} values, file holds {len(data) - header}")
    return np.frombuffer(data, dtype=_IDX_DTYPES[code], offset=header).reshape(dims)


def encode_idx(array: np.ndarray) -> bytes:
    """The idx bytes of a uint8 array, as the official files lay them out (inverse of ``parse_idx``)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def idx_images(data: bytes, path: Path | str, hw: tuple[int, int]) -> np.ndarray:
    """An idx image file as uint8 ``[N, 1, H, W]``, checking the image size."""
    images = parse_idx(data, path)
    if images.ndim != 3 or tuple(images.shape[1:]) != hw:
        raise corrupt(path, f"expected images of shape (N, {hw[0]}, {hw[1]}), got {images.shape}")
    return images[:, None]


def idx_labels(data: bytes, path: Path | str, num_classes: int) -> np.ndarray:
    """An idx label file as int64 ``[N]``, checking the label range."""
    labels = parse_idx(data, path)
    if labels.ndim != 1:
        raise corrupt(path, f"expected a vector of labels, got shape {labels.shape}")
    return _checked_labels(labels, path, num_classes)


def safe_unpickle(data: bytes, path: Path | str):
    """Unpickle bytes that may hold only plain containers and numpy arrays (``encoding="latin1"``
    reads the Python 2 pickles of CIFAR-10 and deeplearning.net's mnist.pkl)."""
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except TicketlabError:
        raise
    except Exception as exc:  # pickle raises many types on damaged input
        raise corrupt(path, f"unpickling failed: {type(exc).__name__}: {exc}") from None


def cifar_batch(data: bytes, path: Path | str, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR python batch (dict with ``data``: uint8 N x 3072, ``labels``) as ``([N, 3, 32, 32], [N])``."""
    batch = safe_unpickle(data, path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise corrupt(path, "not a CIFAR batch: expected a dict with 'data' and 'labels'")
    rows = np.asarray(batch["data"])
    if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
        raise corrupt(path, f"expected uint8 data of shape (N, 3072), got {rows.dtype} {rows.shape}")
    labels = np.asarray(batch["labels"])
    if labels.shape != (len(rows),):
        raise corrupt(path, f"{len(rows)} images but labels of shape {labels.shape}")
    # rows are 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 plane
    return rows.reshape(-1, 3, 32, 32), _checked_labels(labels, path, num_classes)


def _checked_labels(labels: np.ndarray, path: Path | str, num_classes: int) -> np.ndarray:
    if not np.issubdtype(labels.dtype, np.integer):
        raise corrupt(path, f"labels have dtype {labels.dtype}, expected integers")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise corrupt(path, f"labels outside 0..{num_classes - 1}")
    return labels.astype(np.int64)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)
