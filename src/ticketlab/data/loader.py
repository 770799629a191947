"""Batches for device-resident data: index slices of a seeded per-epoch permutation, and batched augmentation.

Both are pure functions of ``(seed, step)``: a run resumed at any step draws exactly the batches and the
augmentations it would have drawn had it never stopped. Randomness comes from CPU ``torch.Generator``s and
is moved to the device, so the order is the same on every device.
"""

from __future__ import annotations

import hashlib

import torch

from ticketlab import TicketlabError

_PAD = 4  # CIFAR augmentation: 4-pixel padding, then a random crop back to the original size


def stable_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts``, stable across processes and Python versions (unlike ``hash``)."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


class BatchSampler:
    """Index batches for global iteration ``step``: a slice of a permutation of ``range(n)`` drawn per epoch.

    Epoch ``e`` uses ``torch.randperm(n)`` from a generator seeded by ``stable_seed("batches", seed, e)``.
    Iteration ``step`` is batch ``step % iterations_per_epoch`` of epoch ``step // iterations_per_epoch``;
    the last partial batch of each epoch is dropped, so every batch has ``batch_size`` examples.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str = "cpu"):
        if batch_size <= 0:
            raise TicketlabError(f"batch size must be > 0, got {batch_size}")
        if n < batch_size:
            raise TicketlabError(f"batch size {batch_size} exceeds the {n} training examples; "
                                 f"lower training.batch_size or use more data (data.train_subset=0)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.device = torch.device(device)
        self.iterations_per_epoch = n // batch_size
        self._epoch: int | None = None
        self._perm: torch.Tensor | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        """The order of the examples in ``epoch`` (0-based), on the sampler's device."""
        if epoch != self._epoch:  # one epoch's permutation is cached; a resume recomputes it
            generator = torch.Generator().manual_seed(stable_seed("batches", self.seed, epoch))
            self._perm = torch.randperm(self.n, generator=generator).to(self.device)
            self._epoch = epoch
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        """The example indices (int64, on the device) of the batch for global iteration ``step`` (0-based)."""
        if step < 0:
            raise TicketlabError(f"step must be >= 0, got {step}")
        epoch, position = divmod(step, self.iterations_per_epoch)
        start = position * self.batch_size
        return self.permutation(epoch)[start:start + self.batch_size]

    def __repr__(self) -> str:
        return f"BatchSampler(n={self.n}, batch_size={self.batch_size}, seed={self.seed})"


def augment_batch(x: torch.Tensor, seed: int, step: int, fill: float = 0.0, part: slice | None = None,
                  batch: int | None = None) -> torch.Tensor:
    """Random crops and horizontal flips of a batch ``[N, C, H, W]``, as batched tensor ops.

    Each image is padded by 4 pixels of ``fill`` on every side, cropped back to ``H x W`` at a uniformly
    random offset (0..8 per axis) and flipped left-right with probability 1/2. On normalised inputs the
    default ``fill=0`` pads with the dataset's mean colour (torchvision's ``RandomCrop(32, padding=4)``
    before ``Normalize`` pads with black, i.e. ``fill=-mean/std`` per channel; the difference is small).
    The draws come from a generator seeded by ``stable_seed("augment", seed, step)``. ``x`` may be
    ``part`` of a batch of ``batch`` images (a data-parallel rank's slice): it is augmented exactly as
    those images are when the whole batch is.
    """
    if x.dim() != 4:
        raise TicketlabError(f"augment_batch expects images [N, C, H, W], got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    whole = n if batch is None else batch
    part = part or slice(0, whole)
    if len(range(whole)[part]) != n:
        raise TicketlabError(f"augment_batch: {n} images are not part {part} of a batch of {whole}")
    generator = torch.Generator().manual_seed(stable_seed("augment", seed, step))
    offsets = torch.randint(0, 2 * _PAD + 1, (whole, 2), generator=generator)[part].to(x.device)
    flips = (torch.rand(whole, generator=generator) < 0.5)[part].to(x.device)

    padded = torch.nn.functional.pad(x, (_PAD, _PAD, _PAD, _PAD), value=fill)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)            # [N, H] rows of the padded image
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)            # [N, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)              # a flip reads the columns backwards
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices split by the channel slice go first: the result is [N, H, W, C]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()
