"""Helpers for the weight-initialization lesson.

Everything here is given to students: the forward and backward passes of the
3-layer network LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID, the
loss, prediction, plotting and the frozen "circles" data set.  The students
write only the three initializers.

Arrays follow the course convention: one example per *column*, so an input
batch ``X`` has shape ``(n_features, m)`` and labels ``Y`` have shape ``(1, m)``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

DATASET_PATH = Path(__file__).resolve().parent / "datasets" / "circles.h5"
# SHA-256 of datasets/circles.h5 as written by datasets/make_circles_h5.py.
DATASET_SHA256 = "47e9d32a0338a4c6de2bd8b41ba76dc3c4ce6b5a98a841c9d6ded5b01c13dc97"

Parameters = dict[str, np.ndarray]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Return 1 / (1 + exp(-x)), element-wise.

    For very negative x, exp(-x) overflows to inf and the result is exactly
    0.0, which is the correct limit; the overflow warning is silenced because
    the large-random exercise provokes it on purpose.
    """
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def relu(x: np.ndarray) -> np.ndarray:
    """Return max(0, x), element-wise."""
    return np.maximum(0, x)


def forward_propagation(X: np.ndarray, parameters: Parameters) -> tuple[np.ndarray, tuple]:
    """Run LINEAR -> RELU -> LINEAR -> RELU -> LINEAR -> SIGMOID.

    Args:
        X: input data, shape (n_features, m).
        parameters: "W1", "b1", "W2", "b2", "W3", "b3".

    Returns:
        a3: the output probabilities, shape (1, m).
        cache: intermediate values needed by ``backward_propagation``.
    """
    W1, b1 = parameters["W1"], parameters["b1"]
    W2, b2 = parameters["W2"], parameters["b2"]
    W3, b3 = parameters["W3"], parameters["b3"]

    z1 = np.dot(W1, X) + b1
    a1 = relu(z1)
    z2 = np.dot(W2, a1) + b2
    a2 = relu(z2)
    z3 = np.dot(W3, a2) + b3
    a3 = sigmoid(z3)

    cache = (z1, a1, W1, b1, z2, a2, W2, b2, z3, a3, W3, b3)
    return a3, cache


def backward_propagation(X: np.ndarray, Y: np.ndarray, cache: tuple) -> dict[str, np.ndarray]:
    """Return the gradients of the cross-entropy loss for every parameter.

    Args:
        X: input data, shape (n_features, m).
        Y: true labels (0 or 1), shape (1, m).
        cache: the second value returned by ``forward_propagation``.

    Returns:
        A dict with "dW1", "db1", ... "dW3", "db3" and the intermediate
        gradients "dz1", "da1", "dz2", "da2", "dz3".
    """
    m = X.shape[1]
    (z1, a1, W1, b1, z2, a2, W2, b2, z3, a3, W3, b3) = cache

    dz3 = 1.0 / m * (a3 - Y)
    dW3 = np.dot(dz3, a2.T)
    db3 = np.sum(dz3, axis=1, keepdims=True)

    da2 = np.dot(W3.T, dz3)
    dz2 = da2 * (a2 > 0)  # ReLU passes the gradient only where it was active
    dW2 = np.dot(dz2, a1.T)
    db2 = np.sum(dz2, axis=1, keepdims=True)

    da1 = np.dot(W2.T, dz2)
    dz1 = da1 * (a1 > 0)
    dW1 = np.dot(dz1, X.T)
    db1 = np.sum(dz1, axis=1, keepdims=True)

    return {"dz3": dz3, "dW3": dW3, "db3": db3,
            "da2": da2, "dz2": dz2, "dW2": dW2, "db2": db2,
            "da1": da1, "dz1": dz1, "dW1": dW1, "db1": db1}


def update_parameters(parameters: Parameters, grads: dict[str, np.ndarray],
                      learning_rate: float) -> Parameters:
    """Take one gradient-descent step: p <- p - learning_rate * dp, for every W and b."""
    n_layers = len(parameters) // 2
    for l in range(1, n_layers + 1):
        parameters[f"W{l}"] = parameters[f"W{l}"] - learning_rate * grads[f"dW{l}"]
        parameters[f"b{l}"] = parameters[f"b{l}"] - learning_rate * grads[f"db{l}"]
    return parameters


def compute_loss(a3: np.ndarray, Y: np.ndarray) -> float:
    """Return the mean binary cross-entropy  -1/m * sum(y log a + (1-y) log(1-a)).

    Each example contributes only the term of its own label.  When the network
    is *certain and wrong* (a3 rounded to exactly 1.0 for a 0 label, or to 0.0
    for a 1 label), that term is -log(0) = +inf and the loss returned is
    ``inf``: that is the true value of the loss in floating point, not an
    error, so no warning is raised.  The large-random exercise shows it.
    """
    m = Y.shape[1]
    with np.errstate(divide="ignore"):
        per_example = np.where(Y == 1, -np.log(a3), -np.log(1 - a3))
    return float(1.0 / m * np.sum(per_example))


def predict(X: np.ndarray, y: np.ndarray, parameters: Parameters) -> np.ndarray:
    """Predict 0/1 labels for X, print "Accuracy: <fraction correct>" and return them.

    Returns:
        An integer array of shape (1, m).
    """
    a3, _ = forward_propagation(X, parameters)
    p = (a3 > 0.5).astype(int)
    print("Accuracy: " + str(np.mean(p[0, :] == y[0, :])))
    return p


def predict_dec(parameters: Parameters, X: np.ndarray) -> np.ndarray:
    """Return boolean predictions (a3 > 0.5) for X; used to draw decision boundaries."""
    a3, _ = forward_propagation(X, parameters)
    return a3 > 0.5


def plot_decision_boundary(model: Callable[[np.ndarray], np.ndarray],
                           X: np.ndarray, y: np.ndarray, title: str | None = None) -> None:
    """Colour the plane by ``model``'s prediction and draw the points (X, y) on top.

    Args:
        model: maps an array of points of shape (k, 2) to k predictions.
        X: points, shape (2, m).
        y: labels, shape (1, m).
        title: optional title of the figure.
    """
    import matplotlib.pyplot as plt

    step = 0.01
    x_min, x_max = X[0, :].min() - 1, X[0, :].max() + 1
    y_min, y_max = X[1, :].min() - 1, X[1, :].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, step), np.arange(y_min, y_max, step))
    Z = np.asarray(model(np.c_[xx.ravel(), yy.ravel()]), dtype=float).reshape(xx.shape)

    plt.contourf(xx, yy, Z, cmap=plt.cm.Spectral)
    plt.scatter(X[0, :], X[1, :], c=y.ravel(), s=20, cmap=plt.cm.Spectral, edgecolors="k")
    plt.xlim(-1.5, 1.5)
    plt.ylim(-1.5, 1.5)
    plt.xlabel("x1")
    plt.ylabel("x2")
    if title:
        plt.title(title)
    plt.show()


def plot_dataset(X: np.ndarray, y: np.ndarray, title: str = "Training set") -> None:
    """Scatter-plot 2-D points coloured by their 0/1 label."""
    import matplotlib.pyplot as plt

    plt.scatter(X[0, :], X[1, :], c=y.ravel(), s=30, cmap=plt.cm.Spectral, edgecolors="k")
    plt.gca().set_aspect("equal")
    plt.xlabel("x1")
    plt.ylabel("x2")
    plt.title(title)
    plt.show()


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 digest of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_dataset(path: Path | str = DATASET_PATH) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the frozen circles data set: 300 training and 100 test points.

    The file's SHA-256 is checked first, so everyone trains on exactly the
    same numbers and gets the costs printed in the notebook.

    Returns:
        train_X (2, 300), train_Y (1, 300), test_X (2, 100), test_Y (1, 100).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is not the one the course ships.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"The data set {path} is missing. It ships with the assignment in the "
            "'datasets' folder next to init_utils.py: fetch the assignment again, or ask "
            "your instructor (it can be rebuilt with datasets/make_circles_h5.py)."
        )
    digest = file_sha256(path)
    if digest != DATASET_SHA256:
        raise ValueError(
            f"The data set {path} has been changed (SHA-256 {digest[:12]}..., expected "
            f"{DATASET_SHA256[:12]}...). Restore the original file from the assignment "
            "or rebuild it with datasets/make_circles_h5.py."
        )
    with h5py.File(path, "r") as f:
        return (f["train_X"][()], f["train_Y"][()], f["test_X"][()], f["test_Y"][()])
