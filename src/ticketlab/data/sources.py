"""Find a dataset's files, verify them against the official md5s, and read them.

Places are tried in order, and the first that holds every file is used (a folder holding some of them is
noted and skipped, never mixed with another):

1. the data directory: the ``data_dir`` argument, else ``$TICKETLAB_DATA``; files under ``<dir>/<dataset>/``;
2. the user cache ``$XDG_CACHE_HOME/ticketlab/<dataset>`` (default ``~/.cache/ticketlab/<dataset>``);
3. copies installed by OS packages (Fashion-MNIST from Debian's ``dataset-fashion-mnist``);
4. the dataset's fetch routes (``routes.py``), which fill the cache; skipped when offline.

If nothing works, the error says which files to put where.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ticketlab import TicketlabError
from ticketlab.data import formats
from ticketlab.data.routes import RouteFailed

if TYPE_CHECKING:
    from ticketlab.data.registry import DatasetDef, OfficialFile

DATA_ENV = "TICKETLAB_DATA"
OFFLINE_ENV = "TICKETLAB_OFFLINE"


@dataclass
class Found:
    """A dataset read from disk, with where it came from and whether every file was official."""

    raw: formats.RawData
    source: str
    unofficial: list[str]  # paths of the files whose md5 did not match


def read(d: DatasetDef, data_dir: str | Path | None = None, allow_unofficial: bool = False,
         offline: bool | None = None) -> Found:
    """Locate, verify and read dataset ``d``. ``data_dir``/``offline`` default to ``$TICKETLAB_DATA``/``$TICKETLAB_OFFLINE``."""
    root = data_dir_from(data_dir)
    offline = offline_from_env() if offline is None else offline
    cache = cache_root() / d.name
    places = [("cache", cache)] + [("system copy", Path(p)) for p in d.system_dirs]
    if root is not None:
        places.insert(0, ("data dir", root / d.name))

    tried = [] if root is not None else ["data dir: not given"]
    for label, folder in places:
        paths, missing = _find(d, folder)
        if not missing:
            return _read_folder(d, paths, str(folder), allow_unofficial)
        tried.append(f"{label} {folder}: " + ("not found" if len(missing) == len(d.files) else
                                                 f"missing {', '.join(missing)}"))

    for route in d.routes:
        if offline:
            tried.append(f"{route.description}: skipped (offline, {OFFLINE_ENV}=1)")
            continue
        try:
            route.fetch(d.files, cache)
        except (RouteFailed, OSError) as exc:
            tried.append(f"{route.description}: {exc}")
            continue
        paths, missing = _find(d, cache)
        if not missing:
            return _read_folder(d, paths, f"{cache} (fetched: {route.description})", allow_unofficial)
        tried.append(f"{route.description}: left {', '.join(missing)} missing")
    raise _not_found(d, cache, tried)


def data_dir_from(data_dir: str | Path | None) -> Path | None:
    """The data directory: ``data_dir`` if given, else ``$TICKETLAB_DATA``, else None."""
    root = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    return None if root is None else Path(root).expanduser()


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/ticketlab``, or ``~/.cache/ticketlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ticketlab"


def offline_from_env() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _find(d: DatasetDef, folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The path of each official file in ``folder`` (published name first, then its decompressed copy)."""
    paths, missing = {}, []
    for f in d.files:
        candidates = [folder / f.name] + ([folder / f.plain_name] if f.plain_name else [])
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            missing.append(f.name)
        else:
            paths[f.name] = hit
    return paths, missing


def _read_folder(d: DatasetDef, paths: dict[str, Path], source: str, allow_unofficial: bool) -> Found:
    contents, unofficial = {}, []
    for f in d.files:
        path = paths[f.name]
        contents[f.name], official = _verified_content(f, path)
        if not official:
            if not allow_unofficial:
                raise TicketlabError(
                    f"{d.name}: {path} does not match the official md5 ({f.md5}); it looks corrupt or "
                    f"unofficial: delete it and re-download (or put the official file there), or set "
                    f"data.allow_unofficial=true to use a known copy, which is then labelled unofficial")
            unofficial.append(str(path))
    assemble = {"idx": _assemble_idx, "cifar": _assemble_cifar}[d.format]
    return Found(assemble(d, contents, paths), source, unofficial)


def _verified_content(f: OfficialFile, path: Path) -> tuple[bytes, bool]:
    """The file's usable content (decompressed if gzip'd) and whether it is the official one.

    A ``.gz`` is official if the file's md5 matches, or, failing that, if its decompressed content
    matches the official content (e.g. Debian's copies, which differ only in the gzip header).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TicketlabError(f"cannot read {path}: {exc.strerror}; check its permissions") from None
    if path.name != Path(f.name).name:  # the decompressed copy of a .gz
        return data, formats.md5(data) == f.raw_md5
    official = formats.md5(data) == f.md5
    if f.name.endswith(".gz"):
        data = formats.gunzip(data, path)
        if not official and f.raw_md5:
            official = formats.md5(data) == f.raw_md5
    return data, official


def _assemble_idx(d: DatasetDef, contents: dict[str, bytes], paths: dict[str, Path]) -> formats.RawData:
    hw = tuple(d.input_shape[1:])
    train_images, train_labels, test_images, test_labels = (f.name for f in d.files)
    train_x = formats.idx_images(contents[train_images], paths[train_images], hw)
    train_y = formats.idx_labels(contents[train_labels], paths[train_labels], d.num_classes)
    test_x = formats.idx_images(contents[test_images], paths[test_images], hw)
    test_y = formats.idx_labels(contents[test_labels], paths[test_labels], d.num_classes)
    _check_pair(train_x, train_y, paths[train_images], paths[train_labels])
    _check_pair(test_x, test_y, paths[test_images], paths[test_labels])
    return formats.RawData(train_x, train_y, test_x, test_y)


def _assemble_cifar(d: DatasetDef, contents: dict[str, bytes], paths: dict[str, Path]) -> formats.RawData:
    *train_files, test_file = (f.name for f in d.files)
    train = [formats.cifar_batch(contents[name], paths[name], d.num_classes) for name in train_files]
    test_x, test_y = formats.cifar_batch(contents[test_file], paths[test_file], d.num_classes)
    return formats.RawData(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                           test_x, test_y)


def _check_pair(x: np.ndarray, y: np.ndarray, x_path: Path, y_path: Path) -> None:
    if len(x) != len(y):
        raise TicketlabError(f"{x_path} holds {len(x)} images but {y_path} holds {len(y)} labels; "
                             f"one of them is truncated or from another dataset: replace both with the official files")


def _not_found(d: DatasetDef, cache: Path, tried: list[str]) -> TicketlabError:
    names = ", ".join(f.name for f in d.files)
    return TicketlabError(
        f"{d.name} not found: put {names} into DIR/{d.name}/ and pass --data-dir DIR (or set {DATA_ENV}=DIR), "
        f"or into the cache {cache}/ (tried: {'; '.join(tried)})")
