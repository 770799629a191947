"""Datasets as device-resident tensors: ``load(spec)`` gives normalised train/val/test splits.

    from ticketlab.data import load, BatchSampler, augment_batch
    splits = load(DataSpec("mnist"), data_dir="/data", device="cuda")
    sampler = BatchSampler(len(splits.train_y), batch_size=60, seed=0, device="cuda")
    idx = sampler.indices(step); x, y = splits.train_x[idx], splits.train_y[idx]

Where the files come from and how they are verified: ``sources.py`` (names and md5s in ``registry.py``).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ticketlab import TicketlabError
from ticketlab.data import imagefolder, registry, sources, synthetic
from ticketlab.data.images import EvalSet, ImageFiles, TrainBatches
from ticketlab.data.loader import BatchSampler, augment_batch, stable_seed
from ticketlab.data.registry import DATASETS, DatasetDef
from ticketlab.spec import DataSpec

__all__ = ["load", "load_cached", "input_shape", "train_batches", "train_eval_split", "Splits", "DatasetInfo", "ImageFiles", "EvalSet",
           "BatchSampler", "augment_batch", "stable_seed", "DATASETS", "DatasetDef"]


@dataclass(frozen=True)
class DatasetInfo:
    """What was loaded, for the record."""

    name: str
    input_shape: tuple[int, ...]   # (C, H, W)
    num_classes: int
    official: bool                 # False when some file's md5 differs from the official one
    source: str                    # the folder (or route) the files came from
    label: str                     # e.g. "mnist" or "cifar10 (unofficial copy: md5 mismatch)"
    files: str | None = None       # image folders: sha256 of the file list (md5s pin the other datasets)


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
    eval_sets: dict[str, EvalSet] = field(default_factory=dict)   # shifted test sets, reported beside test


def train_eval_split(splits: Splits) -> tuple[torch.Tensor | ImageFiles, torch.Tensor]:
    """The training examples whose loss and accuracy are reported: the whole split, or with
    ``data.train_eval_size=N`` every k-th of them (k = len // N), so the classes stay as balanced as
    in the split however it is ordered (image folders list class by class)."""
    n = splits.spec.train_eval_size if splits.spec is not None else 0
    total = len(splits.train_x)
    if not n or n >= total:
        return splits.train_x, splits.train_y
    part = slice(0, total // n * n, total // n)
    if isinstance(splits.train_x, ImageFiles):
        return splits.train_x.view(part), splits.train_y[part]
    return splits.train_x[part], splits.train_y[part]   # strided views: nothing is copied


def input_shape(spec: DataSpec) -> tuple[int, ...]:
    """(C, H, W) of the images ``spec`` loads: the dataset's own, or ``data.image_size`` square for image folders."""
    shape = registry.get(spec.dataset).input_shape
    return (shape[0], spec.image_size, spec.image_size) if spec.image_size else shape


@functools.lru_cache(maxsize=4)
def load_cached(spec: DataSpec, data_dir: str | None = None, device: str = "cpu") -> Splits:
    """``load`` on a checked ``device``, cached per process: the experiments and jobs of one process reuse it."""
    from ticketlab.options import check_device
    return load(spec, data_dir=data_dir, device=check_device(device))


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
    if d.format == "imagefolder":
        return _load_folders(spec, d, data_dir, torch.device(device))
    if spec.image_size or spec.eval_sets:
        raise TicketlabError(f"data.image_size and data.eval_sets apply to image folders (data.dataset=imagenet), "
                             f"not {spec.dataset}")
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


def train_batches(splits: Splits, sampler: BatchSampler, seed: int, augment: bool, part: slice, batch: int,
                  total: int):
    """``fetch(step) -> (x, y)``: the training batch of ``step`` (this rank's ``part`` of a batch of ``batch``).

    Tensor splits are index slices (augmented by ``augment_batch``); image folders decode ahead of the
    loop (``images.TrainBatches``, random resized crops when ``augment``)."""
    if isinstance(splits.train_x, ImageFiles):
        stream = TrainBatches(splits.train_x, sampler, seed, augment, part, total)

        def fetch_files(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            x, idx = stream.batch(step)
            return x, splits.train_y[idx]
        return fetch_files

    def fetch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = sampler.indices(step)[part]
        x, y = splits.train_x[idx], splits.train_y[idx]
        if augment:
            x = augment_batch(x, seed, step, part=part, batch=batch)
        return x, y
    return fetch


def _load_folders(spec: DataSpec, d: DatasetDef, data_dir: str | Path | None, device: torch.device) -> Splits:
    """ImageNet's splits as ``ImageFiles`` (5,000 validation images from train, the official val as test)
    and the shifted test sets of ``spec.eval_sets``, every folder checked before anything trains."""
    bad = [n for n in spec.eval_sets if n not in imagefolder.EVAL_SETS]
    if bad:
        raise TicketlabError(f"unknown data.eval_sets {bad}; choose from {sorted(imagefolder.EVAL_SETS)}")
    size = spec.image_size or d.input_shape[-1]
    root = _folder_root(d, data_dir)
    wanted = [imagefolder.TRAIN, imagefolder.TEST] + [imagefolder.EVAL_SETS[n] for n in spec.eval_sets]
    missing = [f.folder for f in wanted if not (root / f.folder).is_dir()]
    if missing:
        raise TicketlabError(f"image folders missing under {root}: {', '.join(missing)}. Put ImageNet there as "
                             f"{root}/imagenet/train/<wnid>/*.JPEG and {root}/imagenet/val/<wnid>/*.JPEG (val sorted "
                             f"into class folders) and the shifted test sets as {root}/<set>/<class>/*; or pass "
                             f"--data-dir / set {sources.DATA_ENV} (ticketlab.data.imagefolder describes the layout)")
    train_files, train_labels, wnids = imagefolder.scan(root / imagefolder.TRAIN.folder)
    test_files, test_labels, _ = imagefolder.scan(root / imagefolder.TEST.folder, wnids)
    counts = [(imagefolder.TRAIN, len(train_files), len(wnids)), (imagefolder.TEST, len(test_files), len(wnids))]
    sets = {}
    for name in spec.eval_sets:
        fs = imagefolder.EVAL_SETS[name]
        files, labels, classes = imagefolder.scan(root / fs.folder, wnids, fs.by_index)
        counts.append((fs, len(files), len(classes)))
        sets[name] = (fs, files, labels, sorted(set(labels.tolist())))
    unofficial = [f"{fs.folder}: {n:,} images in {c} classes (official: {fs.images:,} in {fs.classes})"
                  for fs, n, c in counts if (n, c) != (fs.images, fs.classes)]
    if unofficial and not spec.allow_unofficial:
        raise TicketlabError("not the official image sets: " + "; ".join(unofficial) +
                             ". Complete the folders, or set data.allow_unofficial=true to use them as they are "
                             "(every result is then labelled)")
    if len(wnids) > d.num_classes:
        raise TicketlabError(f"{root / imagefolder.TRAIN.folder} holds {len(wnids)} class folders; "
                             f"{d.name} has {d.num_classes}")

    def files(paths: list[str]) -> ImageFiles:
        return ImageFiles(paths, size, d.mean, d.std, device)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.tensor(y, dtype=torch.int64, device=device)

    train_index, val_index = split_indices(len(train_files), spec)
    label = d.name + (" (unofficial copy: image counts differ)" if unofficial else "")
    eval_sets = {}
    for name, (fs, paths, y, present) in sets.items():
        classes = None
        if fs.project:   # score on the set's own classes; labels become positions among them
            position = {c: i for i, c in enumerate(present)}
            y = np.asarray([position[c] for c in y.tolist()], dtype=np.int64)
            classes = torch.tensor(present, dtype=torch.int64, device=device)
        eval_sets[name] = EvalSet(files(paths), labels(y), classes)
    listed = "\n".join([*train_files, *test_files, *(p for _, paths, _, _ in sets.values() for p in paths)])
    fingerprint = hashlib.sha256(listed.replace(str(root), "").encode()).hexdigest()[:16]
    info = DatasetInfo(d.name, (3, size, size), d.num_classes, not unofficial, str(root), label, fingerprint)
    return Splits(
        train_x=files([train_files[i] for i in train_index]), train_y=labels(train_labels[train_index]),
        val_x=files([train_files[i] for i in val_index]), val_y=labels(train_labels[val_index]),
        test_x=files(test_files), test_y=labels(test_labels), info=info,
        train_index=torch.from_numpy(train_index).to(device), val_index=torch.from_numpy(val_index).to(device),
        spec=spec, eval_sets=eval_sets)


def _folder_root(d: DatasetDef, data_dir: str | Path | None) -> Path:
    """The data dir when it holds ``imagenet/``, else the cache's parent folder of datasets."""
    root = sources.data_dir_from(data_dir)
    if root is not None and (root / d.name).is_dir():
        return root
    cache = sources.cache_root()
    if (cache / d.name).is_dir():
        return cache
    return root if root is not None else cache
