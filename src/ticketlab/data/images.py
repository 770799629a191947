"""Images decoded from files when a batch is drawn, standing in for the tensors of a split ([S0]'s ImageNet).

ImageNet does not fit in memory as tensors (1.28M images), so its splits are ``ImageFiles``, which stand
in for an ``[N, 3, S, S]`` tensor: indexing one with indices or a slice decodes those images (the
evaluation transform), ``view`` narrows it without decoding, ``chunks`` decodes it in order ahead of the
caller in worker processes, and ``TrainBatches`` decodes training batches ahead of the loop the same way.
A training crop is drawn from ``(seed, step, position in the batch)`` only, so the batches of step k are
the same whichever process, worker or resume decodes them.

Transforms (PROTOCOL A9 leaves [S0]'s unstated; decided here): evaluation resizes the short side to
``S / 0.875`` and takes the central ``S x S`` (256 -> 224); training (``data.augment``) takes a random
resized crop (area 8-100%, aspect 3/4-4/3, as torchvision's) and a horizontal flip with probability 1/2.
Both run as one PIL resize of a box of the original image, after a JPEG draft decode at the smallest
scale that keeps the box at least ``S`` pixels wide.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ticketlab import TicketlabError

CROP_FRACTION = 0.875          # evaluation: the central 224 of a 256 short side
WORKERS_ENV = "TICKETLAB_DECODE_WORKERS"


def default_workers() -> int:
    """Decoding processes per training process: ``$TICKETLAB_DECODE_WORKERS``, else all cores but one (at most 16)."""
    value = os.environ.get(WORKERS_ENV)
    if value is not None:
        try:
            return max(0, int(value))
        except ValueError:
            raise TicketlabError(f"{WORKERS_ENV}={value!r} is not a number of processes") from None
    return max(0, min(16, (os.cpu_count() or 1) - 1))


# ---------------------------------------------------------------- decoding


def _crop_box(width: int, height: int, rng: random.Random | None) -> tuple[float, float, float, float]:
    """The box (left, top, right, bottom) of the original image that becomes the crop."""
    if rng is None:  # evaluation: the central square of side CROP_FRACTION x the short side
        side = min(width, height) * CROP_FRACTION
        left, top = (width - side) / 2, (height - side) / 2
        return left, top, left + side, top + side
    area = width * height
    for _ in range(10):   # random resized crop: area 8-100%, log-uniform aspect 3/4-4/3
        target = area * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return left, top, left + w, top + h
    ratio = width / height   # fallback: the whole image, its aspect clamped to 3/4-4/3, centred
    if ratio < 3 / 4:
        w, h = width, round(width / (3 / 4))
    elif ratio > 4 / 3:
        w, h = round(height * 4 / 3), height
    else:
        w, h = width, height
    left, top = (width - w) / 2, (height - h) / 2
    return left, top, left + w, top + h


def decode(path: str, size: int, rng: random.Random | None = None) -> np.ndarray:
    """One image as uint8 ``[3, size, size]``: the evaluation transform, or with ``rng`` a training crop + flip."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            box = _crop_box(width, height, rng)
            flip = rng is not None and rng.random() < 0.5
            scale = max(size / (box[2] - box[0]), size / (box[3] - box[1]))
            if scale < 1:   # a JPEG decodes at 1/2, 1/4 or 1/8 scale when the box stays >= size pixels
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            fx, fy = image.size[0] / width, image.size[1] / height   # the draft's scale, per axis
            image = image.convert("RGB")
            box = (box[0] * fx, box[1] * fy, min(box[2] * fx, image.size[0]), min(box[3] * fy, image.size[1]))
            crop = image.resize((size, size), Image.BILINEAR, box=box)
    except (OSError, ValueError, SyntaxError) as exc:
        raise TicketlabError(f"cannot decode {path}: {exc}; replace it with a readable copy of the image (removing "
                             f"it would change the file list, and so the splits of every run on this folder)") from exc
    if flip:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(crop, dtype=np.uint8).transpose(2, 0, 1)


def crop_rng(seed: int, step: int, position: int) -> random.Random:
    """The draws of the image at ``position`` of the batch of ``step``: the same in every process."""
    from ticketlab.data.loader import stable_seed
    return random.Random(stable_seed("crop", seed, step, position))


@dataclass(frozen=True)
class _Failure:
    """A decoding error, returned by a worker rather than raised: the DataLoader would wrap its message
    in the worker's traceback, and the user needs only the message."""

    message: str


def _stack(files: list[str], size: int, items) -> torch.Tensor | _Failure:
    """uint8 ``[len(items), 3, size, size]`` for items (file position, crop seed parts or None)."""
    try:
        return torch.from_numpy(np.stack([decode(files[i], size, None if r is None else crop_rng(*r))
                                          for i, r in items]))
    except TicketlabError as exc:
        return _Failure(str(exc))


def _checked(pixels: torch.Tensor | _Failure) -> torch.Tensor:
    if isinstance(pixels, _Failure):
        raise TicketlabError(pixels.message)
    return pixels


class _Decoded(torch.utils.data.Dataset):
    """Item k: the images of ``batches[k]``, a list of (file position, crop seed parts or None)."""

    def __init__(self, files: list[str], size: int, batches):
        self.files, self.size, self.batches = files, size, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> torch.Tensor:
        return _stack(self.files, self.size, self.batches[k])


def _loader(dataset: torch.utils.data.Dataset, workers: int, pin: bool) -> Iterator[torch.Tensor]:
    if workers == 0:
        return (dataset[k] for k in range(len(dataset)))
    return iter(torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                            pin_memory=pin, prefetch_factor=2, persistent_workers=False))


# ---------------------------------------------------------------- the tensor stand-in


class ImageFiles:
    """Images of files, normalised on ``device`` when decoded: stands in for a ``[N, 3, S, S]`` split."""

    def __init__(self, files: list[str], size: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str = "cpu", workers: int | None = None):
        self.files, self.size = files, size
        self.mean, self.std = tuple(mean), tuple(std)
        self._device = torch.device(device)
        self.workers = default_workers() if workers is None else workers
        std64 = torch.tensor(self.std, dtype=torch.float64)
        self._scale = (1 / (255 * std64)).float().view(1, -1, 1, 1).to(self._device)
        self._shift = (-torch.tensor(self.mean, dtype=torch.float64) / std64).float().view(1, -1, 1, 1).to(self._device)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"ImageFiles({len(self)} images, {self.size}px, {self._device})"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.files), 3, self.size, self.size)

    @property
    def device(self) -> torch.device:
        return self._device

    def view(self, part: slice) -> ImageFiles:
        """The images ``part`` of these, not decoded."""
        return ImageFiles(self.files[part], self.size, self.mean, self.std, self._device, self.workers)

    def to(self, device: torch.device | str) -> ImageFiles:
        return ImageFiles(self.files, self.size, self.mean, self.std, device, self.workers)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 ``[N, 3, S, S]`` -> (pixels / 255 - mean) / std in float32 on the device, as one multiply-add."""
        return torch.addcmul(self._shift, pixels.to(self._device, non_blocking=True).float(), self._scale)

    def __getitem__(self, key) -> torch.Tensor:
        """The images ``key`` (a slice, or indices), decoded by the evaluation transform."""
        if isinstance(key, slice):
            positions = list(range(len(self.files))[key])
        else:
            positions = torch.as_tensor(key).reshape(-1).tolist()
        if not positions:
            return torch.empty((0, 3, self.size, self.size), device=self._device)
        return self.normalise(_checked(_Decoded(self.files, self.size, [[(i, None) for i in positions]])[0]))

    def chunks(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Every image in order, ``batch_size`` at a time, decoded ahead in worker processes."""
        batches = [[(i, None) for i in range(s, min(s + batch_size, len(self.files)))]
                   for s in range(0, len(self.files), batch_size)]
        for pixels in _loader(_Decoded(self.files, self.size, batches), self._workers_for(len(batches)),
                              self._device.type == "cuda"):
            yield self.normalise(_checked(pixels))

    def _workers_for(self, batches: int) -> int:
        return min(self.workers, batches) if batches > 1 else 0


class TrainBatches:
    """The training batch of each step, decoded ahead of the loop by the images' worker processes.

    ``batch(step)`` returns ``(x, indices)``: the images of ``sampler.indices(step)[part]`` (random crops
    and flips when ``augment``), drawn from ``(seed, step, position in the whole batch)``. Each batch is
    cut into one piece per worker, so the workers share every batch and about two batches are in
    flight, whatever their number. Asking for a step other than the next one (a resume, a restart)
    starts decoding again from there."""

    def __init__(self, images: ImageFiles, sampler, seed: int, augment: bool, part: slice, total: int):
        from ticketlab.data.loader import BatchSampler
        self.images, self.sampler, self.part, self.total = images, sampler, part, total
        workers = images._workers_for(2)
        # the workers draw the same order on the CPU (they must not touch an accelerator)
        self._pieces = _Pieces(images, BatchSampler(sampler.n, sampler.batch_size, sampler.seed), seed, augment,
                               part, max(1, workers))
        self._workers = workers
        self._next: int | None = None
        self._stream: Iterator[torch.Tensor] | None = None

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if step != self._next or self._stream is None:
            self.close()
            self._pieces.start, self._pieces.stop = step, max(self.total, step + 1)
            self._stream = _loader(self._pieces, self._workers, self.images.device.type == "cuda")
        pixels = torch.cat([_checked(next(self._stream)) for _ in range(self._pieces.count)])
        self._next = step + 1
        return self.images.normalise(pixels), self.sampler.indices(step)[self.part]

    def close(self) -> None:
        """Stop the decoding workers (they also stop when this object is dropped)."""
        self._stream, self._next = None, None


class _Pieces(torch.utils.data.Dataset):
    """Item k: piece ``k % count`` of the training batch of step ``start + k // count``."""

    def __init__(self, images: ImageFiles, sampler, seed: int, augment: bool, part: slice, count: int):
        self.files, self.size, self.sampler = images.files, images.size, sampler
        self.seed, self.augment, self.part, self.count = seed, augment, part, count
        self.start, self.stop = 0, 0

    def __len__(self) -> int:
        return (self.stop - self.start) * self.count

    def __getitem__(self, k: int) -> torch.Tensor:
        step, piece = self.start + k // self.count, k % self.count
        whole = self.sampler.indices(step).tolist()
        mine = range(len(whole))[self.part]
        cut = [len(mine) * i // self.count for i in range(self.count + 1)]
        items = [(whole[p], (self.seed, step, p) if self.augment else None) for p in mine[cut[piece]:cut[piece + 1]]]
        if not items:
            return torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        return _stack(self.files, self.size, items)


@dataclass
class EvalSet:
    """A shifted test set: its images, labels (positions in ``classes`` when projected) and the class
    indices whose logits it is scored on (None: all)."""

    x: ImageFiles
    y: torch.Tensor
    classes: torch.Tensor | None
