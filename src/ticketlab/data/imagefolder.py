"""ImageNet and its shifted test sets ([S0]) as folders of JPEGs: where they live, what they must hold,
and their files and labels.

Layout, under the data dir (``--data-dir``/``$TICKETLAB_DATA``) or the cache (no route fetches these:
ImageNet needs a licence):

    imagenet/train/<wnid>/*.JPEG     ILSVRC-2012 training images (1,281,167), one folder per class
    imagenet/val/<wnid>/*.JPEG       its 50,000 validation images sorted into the same class folders: the test set
    imagenet_v2/<0..999>/*           ImageNetV2 matched-frequency (10,000); the folder is the class index
    imagenet_r/<wnid>/*              ImageNet-R (30,000, 200 classes; logits projected onto them)
    imagenet_a/<wnid>/*              ImageNet-A (7,500, 200 classes; logits projected onto them)
    imagenet_sketch/<wnid>/*         ImageNet-Sketch (50,889)

A folder holding a single folder of class folders (as the archives unpack) is entered. Class indices are
the positions of the wnids in sorted order, as everywhere else. A folder whose image or class count
differs from the official one is a copy: it loads only with ``data.allow_unofficial`` and is labelled.

Decoding and the tensor stand-ins live in ``images.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ticketlab import TicketlabError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class FolderSet:
    """One folder of class folders: what it should hold and how its folders name classes."""

    name: str
    folder: str                # under the data dir / cache
    images: int                # the official count (0: not checked)
    classes: int
    by_index: bool = False     # class folders are named 0..999 (ImageNetV2), else by wnid
    project: bool = False      # evaluate on the logits of its own classes only (ImageNet-R, -A)


TRAIN = FolderSet("imagenet", "imagenet/train", 1_281_167, 1000)
TEST = FolderSet("imagenet", "imagenet/val", 50_000, 1000)
EVAL_SETS: dict[str, FolderSet] = {s.name: s for s in (
    FolderSet("imagenet_v2", "imagenet_v2", 10_000, 1000, by_index=True),
    FolderSet("imagenet_r", "imagenet_r", 30_000, 200, project=True),
    FolderSet("imagenet_a", "imagenet_a", 7_500, 200, project=True),
    FolderSet("imagenet_sketch", "imagenet_sketch", 50_889, 1000),
)}


# ---------------------------------------------------------------- finding the files


def class_root(folder: Path) -> Path:
    """``folder``, or the single folder inside it when that is where the class folders are."""
    inner = [p for p in folder.iterdir() if p.is_dir()]
    if len(inner) == 1 and not _images_in(inner[0]) and any(p.is_dir() for p in inner[0].iterdir()):
        return inner[0]
    return folder


def scan(folder: Path, wnids: Sequence[str] | None = None, by_index: bool = False) -> tuple[list[str], np.ndarray, list[str]]:
    """(files, labels, class folder names) of a folder of class folders, sorted by class then file name.

    Labels are the positions of the folders' names in ``wnids`` (default: the folders themselves, sorted),
    or the folder names as numbers when ``by_index``."""
    root = class_root(folder)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden(p))
    if not classes:
        raise TicketlabError(f"{root} holds no class folders (expected <class>/<image>.JPEG)")
    position = {w: i for i, w in enumerate(wnids if wnids is not None else classes)}
    files, labels = [], []
    for name in classes:
        if by_index:
            if not name.isdigit() or not 0 <= int(name) < len(position):
                raise TicketlabError(f"{root / name}: ImageNetV2 class folders are named 0..{len(position) - 1}")
            label = int(name)
        elif name in position:
            label = position[name]
        else:
            raise TicketlabError(f"{root / name}: class {name!r} is not one of ImageNet's training classes")
        names = _images_in(root / name)
        files += [str(root / name / f) for f in names]
        labels += [label] * len(names)
    return files, np.asarray(labels, dtype=np.int64), classes


def _images_in(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")
