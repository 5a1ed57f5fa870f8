"""Rebuild datasets/circles.h5, the frozen data set of the lesson, and prove it is reproducible.

The points come from scikit-learn's ``make_circles`` drawn from NumPy's global
random state, seeded exactly as the original lesson did: seed 1 for the 300
training points, seed 2 for the 100 test points, noise 0.05.  Freezing them in
a file means a future scikit-learn release cannot silently change the lesson.

    python datasets/make_circles_h5.py           # rewrite circles.h5, print its SHA-256
    python datasets/make_circles_h5.py --check   # rebuild in a temp dir, compare with the shipped file
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import sklearn.datasets

HERE = Path(__file__).resolve().parent
SHIPPED = HERE / "circles.h5"


def make_split(seed: int, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Return X of shape (2, n) and Y of shape (1, n), one example per column."""
    np.random.seed(seed)
    X, y = sklearn.datasets.make_circles(n_samples=n_samples, noise=0.05)
    return X.T.copy(), y.reshape(1, -1).astype(np.int64)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path) -> str:
    """Write the four arrays to ``path`` and return the file's SHA-256."""
    train_X, train_Y = make_split(seed=1, n_samples=300)
    test_X, test_Y = make_split(seed=2, n_samples=100)
    # No timestamps, fixed layout: the same arrays must give the same bytes.
    with h5py.File(path, "w", track_order=True) as f:
        for name, data in [("train_X", train_X), ("train_Y", train_Y),
                           ("test_X", test_X), ("test_Y", test_Y)]:
            f.create_dataset(name, data=data, track_times=False)
        f.attrs["source"] = "sklearn.datasets.make_circles, noise=0.05; train seed 1 (300), test seed 2 (100)"
    return sha256(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="rebuild in a temporary folder and compare with the shipped file")
    args = parser.parse_args()
    if not args.check:
        print(write(SHIPPED))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = write(Path(tmp) / "circles.h5")
    shipped = sha256(SHIPPED)
    print(f"shipped {shipped}\nrebuilt {rebuilt}")
    if rebuilt != shipped:
        print("MISMATCH: the rebuilt file differs from datasets/circles.h5", file=sys.stderr)
        return 1
    print("identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
