"""Datasets as device-resident tensors: ``load(spec)`` gives normalised train/val/test splits.

    from ticketlab.data import load, BatchSampler, augment_batch
    splits = load(DataSpec("mnist"), data_dir="/data", device="cuda")
    sampler = BatchSampler(len(splits.train_y), batch_size=60, seed=0, device="cuda")
    idx = sampler.indices(step); x, y = splits.train_x[idx], splits.train_y[idx]

Where the files come from and how they are verified: ``sources.py`` (names and md5s in ``registry.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ticketlab import TicketlabError
from ticketlab.data import registry, sources, synthetic
from ticketlab.data.loader import BatchSampler, augment_batch, stable_seed
from ticketlab.data.registry import DATASETS, DatasetDef
from ticketlab.spec import DataSpec

__all__ = ["load", "Splits", "DatasetInfo", "BatchSampler", "augment_batch", "stable_seed", "DATASETS",
           "DatasetDef"]


@dataclass(frozen=True)
class DatasetInfo:
    """What was loaded, for the record."""

    name: str
    input_shape: tuple[int, ...]   # (C, H, W)
    num_classes: int
    official: bool                 # False when some file's md5 differs from the official one
    source: str                    # the folder (or route) the files came from
    label: str                     # e.g. "mnist" or "cifar10 (unofficial copy: md5 mismatch)"


@dataclass
class Splits:
    """Normalised float32 images ``[N, C, H, W]`` and int64 labels, all on one device.

    ``train_index``/``val_index`` are the positions (in the official training set) of the training and
    validation examples, both sorted; test is the official test set in its own order.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    info: DatasetInfo
    train_index: torch.Tensor | None = None
    val_index: torch.Tensor | None = None
    spec: DataSpec | None = None   # what was loaded (data-parallel followers load the same)


def load(spec: DataSpec, data_dir: str | Path | None = None, device: torch.device | str = "cpu",
         offline: bool | None = None) -> Splits:
    """Load ``spec.dataset``, split off ``spec.val_size`` validation examples and normalise.

    Validation examples are drawn from the official training set by ``numpy.random.RandomState(split_seed)
    .permutation``; the rest (in their original order, cut to the first ``train_subset`` if > 0) train.
    ``data_dir`` defaults to ``$TICKETLAB_DATA``; ``offline`` (default ``$TICKETLAB_OFFLINE``) skips the
    routes that need the network. Files whose md5 differs from the official ones load only with
    ``spec.allow_unofficial``, and are then labelled in ``info``.
    """
    d = registry.get(spec.dataset)
    if d.format == "synthetic":
        raw = synthetic.generate(d.input_shape, d.num_classes)
        source, unofficial = "generated in-process (ticketlab.data.synthetic)", []
    else:
        found = sources.read(d, data_dir, spec.allow_unofficial, offline)
        raw, source, unofficial = found.raw, found.source, found.unofficial
    train_index, val_index = split_indices(len(raw.train_y), spec)

    device = torch.device(device)
    mean = torch.tensor(d.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(d.std, device=device).view(1, -1, 1, 1)

    def images(pixels: np.ndarray) -> torch.Tensor:
        # move the bytes, not the floats: a quarter of the transfer to an accelerator
        x = torch.tensor(pixels, device=device)  # a copy: file buffers are read-only
        return (x.float().div_(255) - mean).div_(std)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.tensor(y, dtype=torch.int64, device=device)  # a copy: never aliases the source arrays

    label = d.name + (" (unofficial copy: md5 mismatch)" if unofficial else "")
    info = DatasetInfo(d.name, d.input_shape, d.num_classes, not unofficial, source, label)
    return Splits(
        train_x=images(raw.train_x[train_index]), train_y=labels(raw.train_y[train_index]),
        val_x=images(raw.train_x[val_index]), val_y=labels(raw.train_y[val_index]),
        test_x=images(raw.test_x), test_y=labels(raw.test_y), info=info,
        train_index=torch.from_numpy(train_index).to(device), val_index=torch.from_numpy(val_index).to(device),
        spec=spec)


def split_indices(n_train: int, spec: DataSpec) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions of the training and validation examples among the ``n_train`` official ones."""
    if spec.val_size >= n_train:
        raise TicketlabError(f"data.val_size={spec.val_size} leaves no training data: {spec.dataset} has "
                             f"{n_train} training examples; set data.val_size below that")
    if not 0 <= spec.split_seed < 2**32:
        raise TicketlabError(f"data.split_seed must be in [0, 2**32), got {spec.split_seed}")
    # The legacy RandomState stream is frozen by numpy, so a split_seed names the same split forever.
    permutation = np.random.RandomState(spec.split_seed).permutation(n_train)
    val_index = np.sort(permutation[:spec.val_size])
    train_index = np.sort(permutation[spec.val_size:])
    if spec.train_subset:
        if spec.train_subset > len(train_index):
            raise TicketlabError(f"data.train_subset={spec.train_subset} exceeds the {len(train_index)} training "
                                 f"examples left after the validation split; lower it (0 = all)")
        train_index = train_index[:spec.train_subset]
    return train_index.astype(np.int64), val_index.astype(np.int64)
