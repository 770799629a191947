"""A pruning mask: one boolean tensor per prunable weight tensor (True = the weight survives).

Masks are values: every operation returns a new Mask, so a level's mask can be kept, hashed and
compared with the next level's without defensive copies. On disk a mask is bit-packed in one
compressed ``.npz`` written atomically, and its content hash is checked on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
import torch

from ticketlab import TicketlabError

_FORMAT = "ticketlab-mask/1"


class Mask(Mapping[str, torch.Tensor]):
    """Parameter name -> bool tensor shaped like the weight. Iteration follows insertion order."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        # Private: trusts that the tensors are bool and owned by this mask (no copy).
        self._tensors = dict(tensors)

    # ------------------------------------------------------------------ construction

    @classmethod
    def ones(cls, shapes: Mapping[str, torch.Size | tuple]) -> Mask:
        """A dense mask (nothing pruned) for ``{name: shape}``."""
        return cls({name: torch.ones(tuple(shape), dtype=torch.bool) for name, shape in shapes.items()})

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> Mask:
        """A mask from tensors of any dtype (nonzero = kept); the tensors are copied."""
        return cls({name: (t.detach() != 0).contiguous() for name, t in tensors.items()})

    # ------------------------------------------------------------------ Mapping

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"Mask({len(self)} tensors, {self.count():,}/{self.size():,} kept, density {self.density():.4f})"

    # ------------------------------------------------------------------ counts

    def layer_counts(self) -> dict[str, int]:
        """Surviving weights per tensor."""
        return {name: int(m.sum().item()) for name, m in self._tensors.items()}

    def layer_density(self) -> dict[str, float]:
        """Fraction surviving per tensor (1.0 for an empty tensor)."""
        return {name: (int(m.sum().item()) / m.numel() if m.numel() else 1.0) for name, m in self._tensors.items()}

    def count(self) -> int:
        """Surviving weights in all tensors."""
        return sum(self.layer_counts().values())

    def size(self) -> int:
        """All positions in all tensors (pruned or not)."""
        return sum(m.numel() for m in self._tensors.values())

    def density(self) -> float:
        """count() / size(); 1.0 for an empty mask (nothing has been pruned)."""
        size = self.size()
        return self.count() / size if size else 1.0

    # ------------------------------------------------------------------ algebra

    def __and__(self, other: Mask) -> Mask:
        self._check_compatible(other, "&")
        return Mask({name: m & other[name].to(m.device) for name, m in self._tensors.items()})

    def __invert__(self) -> Mask:
        """The complement (used by LTH_flip, [S4] §4.2)."""
        return Mask({name: ~m for name, m in self._tensors.items()})

    def equals(self, other: Mask) -> bool:
        """Same names, shapes and bits (insertion order and device do not matter)."""
        if not isinstance(other, Mask) or set(self) != set(other):
            return False
        return all(m.shape == other[n].shape and torch.equal(m, other[n].to(m.device))
                   for n, m in self._tensors.items())

    def __eq__(self, other: object) -> bool:
        # Mapping's __eq__ would compare tensors with `==` and fail on their truth value.
        return self.equals(other) if isinstance(other, Mask) else NotImplemented

    __hash__ = None  # equality is by content; use .hash() for a stable digest

    def is_subset_of(self, other: Mask) -> bool:
        """True when every weight kept here is also kept in ``other`` (masks only shrink across levels)."""
        self._check_compatible(other, "is_subset_of")
        return all(not (m & ~other[n].to(m.device)).any() for n, m in self._tensors.items())

    def to(self, device: torch.device | str) -> Mask:
        return Mask({name: m.to(device) for name, m in self._tensors.items()})

    def drop_lowest(self, scores: Mapping[str, torch.Tensor], count: int, keep_ties: bool = False) -> Mask:
        """Remove the ``count`` surviving positions with the smallest scores among the named tensors.

        The candidates are pooled in mask order; the result equals taking the first ``count`` of a
        *stable* sort, so ties go to the tensor earlier in the mask and then to the lower flat
        index: the same input always gives the same mask. With ``keep_ties``, only the candidates
        scoring below the lowest survivor go ("score >= threshold" keeps), so ties may keep more.
        Pruned positions are never candidates, so nothing is ever revived.
        """
        unknown = set(scores) - set(self)
        if unknown:
            raise TicketlabError(f"scores for tensors not in the mask: {sorted(unknown)}")
        names = [n for n in self if n in scores]
        if count == 0 or not names:
            return self
        device = self[names[0]].device
        alive = [self[n].reshape(-1).to(device) for n in names]
        values = torch.cat([scores[n].detach().reshape(-1).to(device)[a] for n, a in zip(names, alive)])
        if not 0 <= count <= values.numel():
            raise TicketlabError(f"cannot remove {count} weights from {values.numel()} survivors in {names}")
        victims = _first_k_of_stable_sort(values, count)
        if keep_ties and count < values.numel():
            victims = values < torch.kthvalue(values, count + 1).values   # below the lowest survivor
        out, start = dict(self._tensors), 0
        for name, a in zip(names, alive):
            end = start + int(a.sum().item())
            flat = a.clone()
            flat[a] = ~victims[start:end]
            out[name] = flat.view(self[name].shape).to(self[name].device)
            start = end
        return Mask(out)

    def _check_compatible(self, other: Mask, op: str) -> None:
        if set(self) != set(other) or any(self[n].shape != other[n].shape for n in self):
            raise TicketlabError(f"mask {op}: the masks cover different tensors or shapes; "
                                 "both must come from the same model")

    # ------------------------------------------------------------------ hashing and files

    def hash(self) -> str:
        """sha256 of the sorted names, shapes and packed bits: stable across devices, orders and files."""
        digest = hashlib.sha256()
        for name in sorted(self._tensors):
            m = self._tensors[name]
            digest.update(json.dumps([name, list(m.shape)]).encode())
            digest.update(_pack(m).tobytes())
        return digest.hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Write a bit-packed compressed ``.npz`` atomically (a crash never leaves a partial file)."""
        names = list(self._tensors)
        meta = {"format": _FORMAT, "names": names,
                "shapes": [list(self[n].shape) for n in names], "hash": self.hash()}
        arrays = {f"bits_{i}": _pack(self[n]) for i, n in enumerate(names)}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        _atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Mask:
        """Read a mask written by ``save``; a corrupt or truncated file raises TicketlabError."""
        path = Path(path)
        if not path.is_file():
            raise TicketlabError(f"mask file {path} does not exist; rerun the level that writes it")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes().decode())
                if meta.get("format") != _FORMAT:
                    raise ValueError(f"unknown format {meta.get('format')!r}")
                tensors = {name: _unpack(data[f"bits_{i}"], tuple(shape))
                           for i, (name, shape) in enumerate(zip(meta["names"], meta["shapes"]))}
            mask = cls(tensors)
            if mask.hash() != meta["hash"]:
                raise ValueError("content hash mismatch")
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise TicketlabError(f"mask file {path} is corrupt or truncated ({type(exc).__name__}: {exc}); "
                                 "delete it and rerun the level that wrote it") from None
        return mask


def _first_k_of_stable_sort(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool marker of ``torch.sort(values, stable=True).indices[:k]`` in O(n) instead of O(n log n).

    A selection finds the k-th smallest value; everything below it goes, and of the values equal
    to it, the lowest positions fill the rest (faster than the sort on VGG-19's 20M-weight pool: docs/speed.md).
    """
    chosen = torch.zeros_like(values, dtype=torch.bool)
    if k == 0:
        return chosen
    kth = torch.kthvalue(values, k).values
    chosen = values < kth
    missing = k - int(chosen.sum().item())
    chosen[(values == kth).nonzero().squeeze(1)[:missing]] = True
    return chosen


def _pack(m: torch.Tensor) -> np.ndarray:
    return np.packbits(m.detach().reshape(-1).cpu().numpy())


def _unpack(bits: np.ndarray, shape: tuple) -> torch.Tensor:
    n = int(np.prod(shape, dtype=np.int64))
    if bits.dtype != np.uint8 or bits.size != (n + 7) // 8:
        raise ValueError(f"{bits.size} packed bytes do not fit shape {shape}")
    flat = np.unpackbits(bits, count=n).astype(bool)
    return torch.from_numpy(flat).reshape(shape)


def _atomic_write(path: Path, write: Callable) -> None:
    """Write to a temporary name in the same directory, fsync, then os.replace onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # fsync the directory too, so the rename itself survives a power loss.
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ---------------------------------------------------------------------- masked training (PROTOCOL 1.1)

def apply_mask(weights: Mapping[str, torch.Tensor], mask: Mask) -> None:
    """Zero the pruned entries of every weight named in ``mask``, in place.

    masked_fill rather than a multiply: NaN * 0 is NaN and -w * 0 is -0.0, and a pruned weight
    must be exactly +0.
    """
    _check_names(weights, mask, "apply_mask")
    with torch.no_grad():
        for name, m in mask.items():
            w = weights[name]
            w.masked_fill_(~m.to(w.device), 0)


def mask_gradients(weights: Mapping[str, torch.Tensor], mask: Mask) -> None:
    """Zero the gradients of pruned entries in place (after coupled weight decay, PROTOCOL 1.1)."""
    _check_names(weights, mask, "mask_gradients")
    with torch.no_grad():
        for name, m in mask.items():
            grad = weights[name].grad
            if grad is not None:
                grad.masked_fill_(~m.to(grad.device), 0)


def _check_names(weights: Mapping[str, torch.Tensor], mask: Mask, op: str) -> None:
    missing = [n for n in mask if n not in weights]
    if missing:
        raise TicketlabError(f"{op}: the mask names tensors the model lacks: {missing}; "
                             "the mask comes from a different model")
    wrong = [n for n in mask if tuple(weights[n].shape) != tuple(mask[n].shape)]
    if wrong:
        raise TicketlabError(f"{op}: mask and weight shapes differ for {wrong}; "
                             "the mask comes from a different model")
