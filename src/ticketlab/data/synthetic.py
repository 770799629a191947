"""Tiny deterministic datasets generated in-process, for tests and quick runs that must not need files.

Each class has a fixed low-frequency prototype (a random 7x7 pattern upsampled to the image size); an
example is ``0.5 + 0.12 * prototype`` plus uniform noise of half-width 0.6, in byte units, clipped to bytes so
it goes through the same ``/255``-then-normalise path as the real datasets. The noise is strong enough
that the task is not trivial: LeNet-300-100 with Adam (lr 1.2e-3, batch 60) reaches about 97% test
accuracy after 100-300 steps on the 1,000 training examples left by the default 5,000-example validation
split. The training set has 6,000 examples so that the default ``data.val_size=5000`` works unchanged.
"""

from __future__ import annotations

import numpy as np

from ticketlab.data.formats import RawData

TRAIN_SIZE = 6000
TEST_SIZE = 1000
_SEED = 0           # fixed: the dataset is a constant, not a hyperparameter
_CONTRAST = 0.12
_NOISE = 0.6
_PROTOTYPE_GRID = 7


def generate(input_shape: tuple[int, ...], num_classes: int) -> RawData:
    """The synthetic dataset of this shape: uint8 images ``[N, C, H, W]``, balanced-in-expectation labels."""
    # numpy's legacy RandomState has a frozen stream, so the data are the same on every numpy version
    rng = np.random.RandomState(_SEED)
    c, h, w = input_shape
    grid = rng.uniform(-1.0, 1.0, size=(num_classes, c, _PROTOTYPE_GRID, _PROTOTYPE_GRID))
    scale_h, scale_w = -(-h // _PROTOTYPE_GRID), -(-w // _PROTOTYPE_GRID)  # ceil: cover the image, then crop
    prototypes = np.kron(grid, np.ones((1, 1, scale_h, scale_w)))[:, :, :h, :w]

    # integer arithmetic in byte units: the same data as the float formula, several times faster
    offsets = np.rint(255 * (0.5 + _CONTRAST * prototypes)).astype(np.int16)
    half_width = round(255 * _NOISE)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.randint(0, num_classes, size=n)
        noise = rng.randint(-half_width, half_width + 1, size=(n, c, h, w), dtype=np.int16)
        noise += offsets[labels]
        return np.clip(noise, 0, 255).astype(np.uint8), labels.astype(np.int64)

    train_x, train_y = draw(TRAIN_SIZE)
    test_x, test_y = draw(TEST_SIZE)
    return RawData(train_x, train_y, test_x, test_y)
