"""How fast ticketlab decodes ImageNet-like JPEGs (data/images.py), per image and per batch.

    .venv/bin/python docs/results/bench/decode_jpeg.py [--images 64] [--workers 0,1]

Writes ``--images`` generated 500x375 JPEGs (ImageNet's typical size, quality 90) to a scratch folder,
then times (1) one image at a time in this process, by the evaluation transform and by the training
crop + flip, median of 5 passes, and (2) training batches of 32 through ``TrainBatches`` with each
number of decoding workers. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
from PIL import Image

from ticketlab.data import BatchSampler, ImageFiles
from ticketlab.data.images import TrainBatches, crop_rng, decode


def make_images(folder: str, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):   # smooth colour fields plus noise: file sizes like photographs (~80 KB)
        small = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
        pixels = np.asarray(small).astype(np.int16) + rng.integers(-20, 20, (375, 500, 3))
        path = os.path.join(folder, f"{i}.JPEG")
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def per_image(paths: list[str], train: bool) -> float:
    passes = []
    for rep in range(5):
        start = time.perf_counter()
        for j, path in enumerate(paths):
            decode(path, 224, crop_rng(0, rep, j) if train else None)
        passes.append((time.perf_counter() - start) / len(paths))
    return statistics.median(passes)


def batches(paths: list[str], workers: int, steps: int = 8, batch: int = 32) -> float:
    images = ImageFiles(paths, 224, (0.5,) * 3, (0.25,) * 3, workers=workers)
    stream = TrainBatches(images, BatchSampler(len(paths), batch, 0), 0, True, slice(0, batch), steps)
    stream.batch(0)   # workers started and the first batch in
    start = time.perf_counter()
    for step in range(1, steps):
        stream.batch(step)
    return (time.perf_counter() - start) / ((steps - 1) * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--workers", default="0,1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(folder, args.images)
        result = {"images": len(paths), "mean_kb": round(np.mean([os.path.getsize(p) for p in paths]) / 1024, 1),
                  "cores": os.cpu_count(),
                  "eval_ms_per_image": round(1000 * per_image(paths, False), 3),
                  "train_ms_per_image": round(1000 * per_image(paths, True), 3),
                  "train_batches_ms_per_image": {w: round(1000 * batches(paths, int(w)), 3)
                                                 for w in args.workers.split(",")}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
