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
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

# The words this module shows (legends, axis labels, printed explanations) go through the course's
# message catalogues, like the tests' messages: public_tests.py's header says how the language is chosen.
from public_tests import N_, _  # no function here may use _ as a variable: it is the translator

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


def train(X: np.ndarray, Y: np.ndarray, parameters: Parameters, num_iterations: int,
          learning_rate: float, record_every: int = 1000) -> tuple[Parameters, list[float]]:
    """Run gradient descent on the cross-entropy cost: forward, loss, backward, update, repeated.

    Returns:
        The trained parameters, and the cost before iterations 0, record_every, 2 * record_every, ...
    """
    costs = []
    for i in range(num_iterations):
        a3, cache = forward_propagation(X, parameters)
        cost = compute_loss(a3, Y)
        grads = backward_propagation(X, Y, cache)
        parameters = update_parameters(parameters, grads, learning_rate)
        if i % record_every == 0:
            costs.append(cost)
    return parameters, costs


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


def signal_sizes(X: np.ndarray, Y: np.ndarray, parameters: Parameters) -> dict:
    """How large the 3-layer network's signals are for these parameters, before any training step.

    Returns:
        "z_std": the standard deviation of z1, z2 and z3 over all units and examples;
        "median_abs_z3": the median of |z3|, the input of the final sigmoid;
        "grad_norms": the Frobenius norms of dW1, dW2 and dW3;
        "db3": the gradient of the last bias.
    """
    _, cache = forward_propagation(X, parameters)
    grads = backward_propagation(X, Y, cache)
    z1, z2, z3 = cache[0], cache[4], cache[8]
    return {"z_std": [float(z.std()) for z in (z1, z2, z3)],
            "median_abs_z3": float(np.median(np.abs(z3))),
            "grad_norms": [float(np.linalg.norm(grads[f"dW{l}"])) for l in (1, 2, 3)],
            "db3": float(grads["db3"][0, 0])}


def dead_units(X: np.ndarray, parameters: Parameters, layer: int) -> int:
    """How many ReLU units of hidden ``layer`` (1 or 2) output 0 for every column of X.

    Such a unit is dead for these points: its slope is 0 on all of them, so its own weights and bias
    get no gradient.  It can come back only if the layer before it changes.
    """
    _, cache = forward_propagation(X, parameters)
    activations = {1: cache[1], 2: cache[5]}[layer]
    return int(np.sum(np.all(activations == 0, axis=1)))


def predict(X: np.ndarray, y: np.ndarray, parameters: Parameters) -> np.ndarray:
    """Predict 0/1 labels for X, print "Accuracy: <fraction correct>" and return them.

    Returns:
        An integer array of shape (1, m).
    """
    a3, _cache = forward_propagation(X, parameters)
    p = (a3 > 0.5).astype(int)
    print(_("Accuracy: {accuracy}").format(accuracy=np.mean(p[0, :] == y[0, :])))
    return p


def predict_dec(parameters: Parameters, X: np.ndarray) -> np.ndarray:
    """Return boolean predictions (a3 > 0.5) for X; used to draw decision boundaries."""
    a3, _cache = forward_propagation(X, parameters)
    return a3 > 0.5


def one_blas_thread():
    """A context in which NumPy's matrix products use one BLAS thread.

    The demonstrations multiply matrices just large enough for OpenBLAS to split them over threads;
    on a busy machine those threads wait for each other and a product takes many times longer.  One
    thread is fast everywhere and gives the same bits on every run.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


# Figures.  One colour-blind-safe pair (Okabe & Ito's blue and orange) marks the two labels
# everywhere: darker for the points, lighter for the filled regions, and each label also has its own
# marker, so the plots read without colour too.
LABEL_COLOURS = ("#0072B2", "#E69F00")
FILL_COLOURS = ("#C6DBEF", "#FBE3B4")
LABEL_MARKERS = ("o", "^")
LABEL_NAMES = (N_("label 0 (outer circle)"), N_("label 1 (inner circle)"))
# Curves of different runs: Okabe & Ito colours, each with its own line style and marker.
RUN_STYLES = ({"color": "#0072B2", "linestyle": "-", "marker": "o"},
              {"color": "#D55E00", "linestyle": "--", "marker": "^"},
              {"color": "#009E73", "linestyle": "-.", "marker": "s"},
              {"color": "#CC79A7", "linestyle": ":", "marker": "D"},
              {"color": "#000000", "linestyle": "-", "marker": "v"})
INF_NOTE = N_("inf: a prediction rounded to exactly 0 or 1 and wrong")
FILL_NAMES = (N_("filled blue: the network predicts 0"), N_("filled orange: the network predicts 1"))

# Chinese titles and labels need a font with CJK glyphs; matplotlib's DejaVu Sans has none and draws
# boxes.  Noto Sans CJK SC comes from Debian's fonts-noto-cjk where installed (a hub's image), else
# from the mplfonts wheel (pip, so also on Colab; course-requirements.txt installs it).  It is a
# fallback after DejaVu Sans, so figures in other languages are drawn exactly as before.
CJK_FAMILY = "Noto Sans CJK SC"
MPLFONTS_FILE = "fonts/NotoSansCJKsc-Regular.otf"


def cjk_font_available() -> bool:
    """Make matplotlib know a CJK font, if one is installed; return whether it does."""
    import importlib
    import importlib.util

    from matplotlib import font_manager

    try:
        font_manager.findfont(font_manager.FontProperties(family=CJK_FAMILY), fallback_to_default=False)
        return True
    except ValueError:
        pass
    importlib.invalidate_caches()  # mplfonts may have been installed since the kernel started
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or spec.origin is None:
        return False
    font_file = Path(spec.origin).parent / MPLFONTS_FILE
    if not font_file.is_file():
        return False
    font_manager.fontManager.addfont(str(font_file))
    return True


def pyplot():
    """matplotlib.pyplot, with the CJK font as fallback when one is installed.

    Imported here, not at the top: the autograder imports this module and needs no plotting.
    """
    import matplotlib.pyplot as plt

    if CJK_FAMILY not in plt.rcParams["font.family"] and cjk_font_available():
        plt.rcParams["font.family"] = ["DejaVu Sans", CJK_FAMILY]
    return plt


def label_every_decade(axis, most: int = 24) -> None:
    """Label every power of ten of a log axis (matplotlib skips some by default).

    Past 12 decades the labels are drawn smaller, so that they do not run into each other (the deep
    network's activations span 22).  An axis spanning more than ``most`` decades (the explorer's
    fixed one, 63) labels every 2nd, 5th or 10th one and keeps an unlabelled tick on each of the others.
    """
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter, NullLocator

    low, high = (np.log10(v) for v in sorted(axis.get_view_interval()))
    decades = int(np.ceil(high) - np.floor(low))
    if np.floor(high) - np.ceil(low) < 1:  # fewer than two powers of ten in view: matplotlib then labels 2, 3, 5, ...
        return
    step = next(s for s in (1, 2, 5, 10, 20) if decades / s <= most)
    if decades / step > 12:
        axis.set_tick_params(labelsize="small")
    if step == 1:  # no minor ticks: on a figure of ten histograms they cost a second of drawing
        axis.set_major_locator(LogLocator(base=10, numticks=100))
        axis.set_minor_locator(NullLocator())
    else:
        axis.set_major_locator(LogLocator(base=10.0 ** step, numticks=100))
        axis.set_minor_locator(LogLocator(base=10, subs=[1.0], numticks=200))
    axis.set_major_formatter(LogFormatterSciNotation(base=10, labelOnlyBase=False))
    axis.set_minor_formatter(NullFormatter())


def show_figure(caption: str | None = None) -> None:
    """Show the current figure, then print its one-line caption under it.

    The caption says what to see; as plain text it also serves readers who cannot see the image.
    """
    plt = pyplot()
    plt.show()
    if caption:
        print(caption)


def scatter_labels(ax, X: np.ndarray, y: np.ndarray, fills: bool = False) -> None:
    """Draw the points (X, y), one colour and one marker per label, with a legend under the plot.

    With ``fills`` the legend also says which filled colour means which prediction.  It sits under
    the axes, so it never covers a point.
    """
    from matplotlib.patches import Patch

    labels = y.ravel()
    for label in (0, 1):
        ax.scatter(X[0, labels == label], X[1, labels == label], s=22, c=LABEL_COLOURS[label],
                   marker=LABEL_MARKERS[label], edgecolors="k", linewidths=0.5, label=_(LABEL_NAMES[label]))
    handles, names = ax.get_legend_handles_labels()
    if fills:
        handles += [Patch(facecolor=colour, edgecolor="0.5") for colour in FILL_COLOURS]
        names += [_(name) for name in FILL_NAMES]
    ax.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize="small",
              frameon=False)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")


def draw_decision_boundary(ax, model: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray,
                           title: str | None = None, step: float = 0.01, note: str | None = None) -> None:
    """Fill the plane of ``ax`` by ``model``'s 0/1 prediction and draw the points on top.

    The contour levels are fixed (0 below 0.5, 1 above), so a model that predicts one label
    everywhere is filled with that label's colour, never with a colour of its own.  With ``note``
    the plane is not filled and the note is written across it instead (the explorer: a network whose
    outputs are all 0.5 up to rounding has no boundary worth drawing).
    """
    if note:
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", wrap=True,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.5"}, zorder=5)
    else:
        xx, yy = np.meshgrid(np.arange(-1.5, 1.5, step), np.arange(-1.5, 1.5, step))
        with one_blas_thread():
            Z = np.asarray(model(np.c_[xx.ravel(), yy.ravel()]), dtype=float).reshape(xx.shape)
        ax.contourf(xx, yy, Z, levels=[-0.5, 0.5, 1.5], colors=FILL_COLOURS)
    scatter_labels(ax, X, y, fills=not note)
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    if title:
        ax.set_title(title)


def plot_decision_boundary(model: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray,
                           title: str | None = None, caption: str | None = None) -> None:
    """Colour the plane by ``model``'s prediction, draw the points (X, y) on top, show the figure.

    Args:
        model: maps an array of points of shape (k, 2) to k predictions (0/1 or False/True).
        X: points, shape (2, m).
        y: labels, shape (1, m).
        title: title of the figure; name the initialization.
        caption: one line printed under the figure that says what to see.
    """
    _, ax = pyplot().subplots(figsize=(5.5, 6.2))
    draw_decision_boundary(ax, model, X, y, title)
    show_figure(caption)


def plot_dataset(X: np.ndarray, y: np.ndarray, title: str = "Training set",
                 caption: str | None = None) -> None:
    """Scatter-plot 2-D points, one colour and marker per 0/1 label, then print the caption."""
    _, ax = pyplot().subplots(figsize=(5.5, 6.2))
    scatter_labels(ax, X, y)
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_title(title)
    show_figure(caption)


def draw_costs(ax, runs: dict[str, list[float]], every: int = 1000, log: bool = False,
               title: str | None = None, ylim: tuple[float, float] | None = None, early: int = 0) -> None:
    """Draw one cost curve per run (legend label -> costs recorded every ``every`` iterations).

    An infinite cost cannot be drawn as a point, and matplotlib would silently drop it; it is
    marked instead by a triangle on the top edge of the plot at its iteration, labelled INF_NOTE.
    With ``early``, an inset shows the first ``early`` iterations on a log iteration axis (a path
    that a linear axis squeezes into its first pixels), and the main plot's cost axis is scaled to
    the iterations after them.
    """
    inf_marked = False
    highest = 0.0
    for style, (label, costs) in zip(RUN_STYLES, runs.items()):
        iterations = np.arange(len(costs)) * every
        costs = np.asarray(costs, dtype=float)
        finite = np.isfinite(costs)
        highest = max(highest, float(costs[finite & (iterations >= early)].max(initial=0.0)))
        ax.plot(iterations[finite], costs[finite], label=label, markersize=4,
                markevery=max(1, len(costs) // 15), **style)
        for i in iterations[~finite]:
            ax.plot([i], [1.0], transform=ax.get_xaxis_transform(), clip_on=False, marker="^",
                    markersize=10, color=style["color"], linestyle="none",
                    label=None if inf_marked else _(INF_NOTE))
            inf_marked = True
        if early:
            inset = ax.inset_axes([0.5, 0.52, 0.47, 0.4])
            shown = finite & (iterations > 0) & (iterations <= early)
            inset.plot(iterations[shown], costs[shown], color=style["color"], linestyle=style["linestyle"])
            for i in iterations[~finite & (iterations > 0) & (iterations <= early)]:
                inset.plot([i], [1.0], transform=inset.get_xaxis_transform(), clip_on=False, marker="^",
                           markersize=7, color=style["color"], linestyle="none")
            inset.set_xscale("log")
            inset.set_yscale("log")
            label_every_decade(inset.xaxis)
            label_every_decade(inset.yaxis)
            inset.tick_params(labelsize="x-small")
            inset.set_title(_("first {early} iterations (log scales)").format(early=early), fontsize="small")
    if log:
        ax.set_yscale("log")
        label_every_decade(ax.yaxis)
    if ylim:
        ax.set_ylim(*ylim)
    elif early:  # room above the curve for the inset
        ax.set_ylim(0, 2.0 * highest)
    elif not log:  # from 0: a cost creeping in its 8th digit must look flat, not like learning
        ax.set_ylim(0, 1.15 * highest or 1.0)
    ax.set_xlabel(_("iteration"))
    ax.set_ylabel(_("cost"))
    if title:
        ax.set_title(title)
    if len(runs) > 1:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    elif inf_marked:  # one curve needs no legend unless it has an inf mark to explain
        ax.legend(fontsize="small", loc="lower left")


def plot_costs(runs: dict[str, list[float]], title: str, caption: str | None = None,
               every: int = 1000, log: bool = False, early: int = 0) -> None:
    """Plot the cost curves of one or more runs (see ``draw_costs``), then print the caption."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.0) if len(runs) == 1 else (10.0, 4.5))  # room for the legend
    draw_costs(ax, runs, every, log, title, early=early)
    fig.tight_layout()
    show_figure(caption)


# Hidden units of the deep network: the function, and its slope written in terms of its output.
DEEP_ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "relu": (relu, lambda a: (a > 0).astype(float)),
    "tanh": (np.tanh, lambda a: 1 - a ** 2),
    "sigmoid": (sigmoid, lambda a: a * (1 - a)),
}
# A tanh unit is saturated where |a| > 0.97: its slope 1 - a**2 is below 0.06 there.
TANH_SATURATED = 0.97


@dataclass
class DeepPass:
    """One forward and one backward pass through the deep network (see ``deep_network``).

    Lists run from layer 1 to layer L: the activations a[l], the backward signals dz[l] (the
    gradient of the pre-activations) and the weight gradients dW[l].
    """
    activations: list[np.ndarray]
    backward: list[np.ndarray]
    weight_gradients: list[np.ndarray]

    def stds(self, what: str) -> list[float]:
        """The standard deviation per layer of "activations", "backward" or "weight_gradients"."""
        return [float(np.std(values)) for values in getattr(self, what)]

    def dead_fractions(self) -> list[float]:
        """Per layer, the fraction of units that output 0 for every example (dead ReLUs)."""
        return [float(np.mean(np.all(a == 0, axis=1))) for a in self.activations]

    def saturated_fractions(self) -> list[float]:
        """Per layer, the fraction of tanh outputs with |a| > TANH_SATURATED."""
        return [float(np.mean(np.abs(a) > TANH_SATURATED)) for a in self.activations]


def deep_network(scale: Callable[[int, int], float], activation: str = "relu", n_layers: int = 10,
                 width: int = 100, n_examples: int = 200, seed: int = 0) -> DeepPass:
    """Push random inputs through a deep network and a random gradient back: no training.

    Every layer has ``width`` units and weights ``randn(width, width) * scale(n_in, n_out)``; the
    hidden units are ``activation`` ("relu", "tanh" or "sigmoid").  The random numbers come from
    their own generator, seeded with ``seed``, so two calls with different ``scale`` or
    ``activation`` use the very same draws.  The backward pass starts from a random output gradient,
    as if some loss sat on top.
    """
    function, slope = DEEP_ACTIVATIONS[activation]
    rng = np.random.RandomState(seed)
    a = rng.randn(width, n_examples)
    weights = [rng.randn(width, width) * scale(width, width) for _layer in range(n_layers)]
    activations = [a]
    backward, weight_gradients = [], []
    with one_blas_thread():
        for W in weights:
            activations.append(function(W @ activations[-1]))
        da = rng.randn(width, n_examples)
        for W, a_in, a_out in reversed(list(zip(weights, activations[:-1], activations[1:]))):
            dz = da * slope(a_out)
            backward.append(dz)
            weight_gradients.append(dz @ a_in.T / n_examples)
            da = W.T @ dz
    return DeepPass(activations[1:], backward[::-1], weight_gradients[::-1])


def deep_relu_spreads(scale: Callable[[int, int], float], n_layers: int = 10, width: int = 100,
                      n_examples: int = 200, seed: int = 0) -> tuple[list[float], list[float]]:
    """The standard deviation per layer of the activations and of dW in the deep ReLU network.

    See ``deep_network``; this is what the lesson's first deep-network plot and the explorer draw.
    """
    deep = deep_network(scale, "relu", n_layers, width, n_examples, seed)
    return deep.stds("activations"), deep.stds("weight_gradients")


def draw_spreads(ax, spreads: dict[str, list[float]], title: str | None = None,
                 ylabel: str | None = None, legend: bool = True,
                 ylim: tuple[float, float] | None = None) -> None:
    """Draw one line per rule: a layer-by-layer size (from ``deep_relu_spreads``) on a log axis.

    ``ylim`` fixes the axis, so that plots of different settings can be compared by eye.
    """
    for style, (label, values) in zip(RUN_STYLES, spreads.items()):
        ax.plot(np.arange(1, len(values) + 1), values, label=label, markersize=4, **style)
    ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    label_every_decade(ax.yaxis)
    ax.set_xticks(np.arange(1, len(next(iter(spreads.values()))) + 1))
    ax.set_xlabel(_("layer"))
    ax.set_ylabel(ylabel or _("std of the activations"))
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize="small")


def draw_layer_histograms(ax, values: list[np.ndarray], title: str | None = None,
                          xlabel: str | None = None, log: bool = True) -> None:
    """One histogram line per layer (light: layer 1, dark: the last), as practitioners look at them.

    With ``log`` the x axis is |value| on a log scale, so a signal that shrinks or grows by a factor
    per layer shows as peaks that move by equal steps; exact zeros (ReLU's) are left out.  Without
    it, the values themselves (tanh's outputs between -1 and 1).
    """
    from matplotlib import colormaps

    colours = colormaps["viridis_r"](np.linspace(0.15, 1.0, len(values)))
    if log:
        magnitudes = [np.abs(v[v != 0]) for v in values]
        # The axis starts at the lowest layer's 0.1st percentile: the far tail below it is too thin to
        # see, and it would add decades whose labels crowd the axis.
        low = min(float(np.percentile(m, 0.1)) for m in magnitudes)
        high = max(float(m.max()) for m in magnitudes)
        bins = np.logspace(np.log10(low), np.log10(high), 80)
    else:
        magnitudes, bins = values, np.linspace(-1, 1, 61)
    highest = 0.0
    for layer, (v, colour) in enumerate(zip(magnitudes, colours), start=1):
        counts, edges = np.histogram(v, bins=bins)
        highest = max(highest, float(counts.max()) / v.size)
        ax.stairs(counts / v.size, edges, color=colour, label=_("layer {layer}").format(layer=layer)
                  if layer in (1, len(values)) else None)
    if log:
        ax.set_xscale("log")
        label_every_decade(ax.xaxis)
        # Half a figure wide, an axis holds about 13 labels side by side at this size; more need smaller ones.
        ax.tick_params(axis="x", labelsize="small" if np.log10(high / low) <= 13 else "x-small")
    # Headroom above the highest bar: the legend, one row at the top, sits there and covers no bar.
    ax.set_ylim(0, 1.35 * highest)
    ax.set_yticks([])
    if xlabel:
        ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small", loc="upper left", ncol=2)


# The explorer: weights s * randn * factor(n_in), where the rule gives the factor.
EXPLORER_RULES: dict[str, Callable[[int, int], float]] = {
    "plain": lambda n_in, n_out: 1.0,
    "lecun": lambda n_in, n_out: float(np.sqrt(1 / n_in)),
    "he": lambda n_in, n_out: float(np.sqrt(2 / n_in)),
}
EXPLORER_RULE_NAMES = {"plain": "s × randn", "lecun": "s × LeCun", "he": "s × He"}
# A short training, ten times the lesson's learning rate, so that a redraw takes about a second.
EXPLORER_ITERATIONS = 2000
EXPLORER_LEARNING_RATE = 0.1
EXPLORER_STATIC_SCALES = (0.01, 1.0, 10.0)
# Fixed axes, so that two settings can be compared by eye.
# From s = 0.001 with LeCun (layer 10: 2.5e-32) to s = 100 with randn (2.5e+28): no line leaves the plot.
EXPLORER_SPREAD_LIMITS = (1e-33, 1e30)
# The slider moves s by 10**0.02 = ×1.047 a step: fine enough to find where He's signal leaves the band.
EXPLORER_SLIDER_STEP = 0.02
# A network whose outputs all lie this close to 0.5 has no boundary worth drawing: which side of 0.5
# a point falls on is decided by differences in the sixth decimal, down to rounding noise (s = 0.01
# with randn: 2e-6 after the short training; s = 0.03: 6e-5, a boundary).
EXPLORER_FLAT_OUTPUT = 1e-5
# The band in which a signal keeps a usable size (the explorer's grey band, and its question).
USABLE_BAND = (0.1, 10.0)
EXPLORER_DPI = 100
EXPLORER_COST_LIMITS = (0.01, 100.0)


def scaled_parameters(layers_dims: list[int], s: float, rule: str, seed: int = 3) -> Parameters:
    """Weights ``s * randn * EXPLORER_RULES[rule](n_in, n_out)`` and zero biases, from their own seeded generator."""
    rng = np.random.RandomState(seed)
    parameters = {}
    for l in range(1, len(layers_dims)):
        factor = s * EXPLORER_RULES[rule](layers_dims[l - 1], layers_dims[l])
        parameters[f"W{l}"] = rng.randn(layers_dims[l], layers_dims[l - 1]) * factor
        parameters[f"b{l}"] = np.zeros((layers_dims[l], 1))
    return parameters


def draw_exploration(axes, X: np.ndarray, Y: np.ndarray, s: float, rule: str) -> None:
    """Fill three axes for one setting: deep-network spread, short training's cost, its boundary."""
    rule_name = EXPLORER_RULE_NAMES[rule]
    spreads, _gradients = deep_relu_spreads(lambda n_in, n_out: s * EXPLORER_RULES[rule](n_in, n_out))
    axes[0].axhspan(*USABLE_BAND, color="0.85", zorder=0, label=_("grey band: std from 0.1 to 10, a usable size"))
    draw_spreads(axes[0], {rule_name: spreads}, title=_("Deep network, {rule}, s = {s}").format(rule=rule_name, s=f"{s:.3g}"),
                 legend=False, ylim=EXPLORER_SPREAD_LIMITS)
    axes[0].legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    start = scaled_parameters([X.shape[0], 10, 5, 1], s, rule)
    parameters, costs = train(X, Y, start, EXPLORER_ITERATIONS, EXPLORER_LEARNING_RATE, record_every=100)
    draw_costs(axes[1], {rule_name: costs}, every=100, log=True, ylim=EXPLORER_COST_LIMITS,
               title=_("Cost, {rule}, s = {s}").format(rule=rule_name, s=f"{s:.3g}"))
    # Under the plot, like the other two legends: inside, the inf note covered the curve's start and
    # ran past the axes in the longer languages.
    handles, names = axes[1].get_legend_handles_labels()
    axes[1].legend(handles, [textwrap.fill(name, 48) for name in names], fontsize="small", loc="upper center",
                   bbox_to_anchor=(0.5, -0.13), frameon=False)
    xx, yy = np.meshgrid(np.arange(-1.5, 1.5, 0.02), np.arange(-1.5, 1.5, 0.02))
    with one_blas_thread():
        outputs, _cache = forward_propagation(np.c_[xx.ravel(), yy.ravel()].T, parameters)
    flat = bool(np.max(np.abs(outputs - 0.5)) < EXPLORER_FLAT_OUTPUT)
    draw_decision_boundary(axes[2], lambda x: predict_dec(parameters, x.T), X, Y,
                           title=_("Boundary, {rule}, s = {s}").format(rule=rule_name, s=f"{s:.3g}"), step=0.02,
                           note=_("No boundary: the network\noutputs 0.5 everywhere") if flat else None)


def exploration_figure(X: np.ndarray, Y: np.ndarray, settings: list[tuple[float, str]],
                       title: str | None = None):
    """One row of three plots (see ``draw_exploration``) per (s, rule) setting; returns the figure."""
    fig, axes = pyplot().subplots(len(settings), 3, figsize=(14, 4.8 * len(settings)), squeeze=False,
                                  layout="constrained")
    for row, (s, rule) in zip(axes, settings):
        draw_exploration(row, X, Y, s, rule)
    if title:
        fig.suptitle(title)
    return fig


def figure_png(fig) -> bytes:
    """The figure as PNG bytes, as the inline backend would show it; closes the figure."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=EXPLORER_DPI)
    pyplot().close(fig)
    return buffer.getvalue()


class WidgetWithFallback:
    """Displays as ``widget`` where widgets render, and as a static PNG everywhere else.

    Its one output carries both MIME types.  JupyterLab and Notebook 7 prefer the widget view;
    nbconvert (HTML export, nbviewer) skips a widget view whose state was not saved and takes the
    next type, the PNG; a plain-text viewer shows ``text``.
    """

    def __init__(self, widget, png: bytes, text: str) -> None:
        self.widget, self.png, self.text = widget, png, text

    def _repr_mimebundle_(self, **kwargs) -> dict:
        import base64

        data = dict(self.widget._repr_mimebundle_(**kwargs))
        data["image/png"] = base64.b64encode(self.png).decode("ascii")
        data["text/plain"] = self.text
        return data


def explore_initialization(X: np.ndarray, Y: np.ndarray) -> None:
    """Show the interactive explorer: a log slider for s and a choice of rule.

    Each change redraws, for weights s * randn * factor: the 10-layer ReLU network's activation
    spread, and a short training (EXPLORER_ITERATIONS steps at EXPLORER_LEARNING_RATE) of the
    lesson's 3-layer network, its cost curve and its boundary.  Every draw is seeded, so the same
    setting always gives the same picture.  Without ipywidgets, or in a viewer that cannot render
    widgets, a static grid over EXPLORER_STATIC_SCALES (rule s × randn) is shown instead; the widget
    also shows it until the first change.  The grid's caption is its title, since the output that
    carries it must not print a caption under the live widget.
    """
    from IPython.display import Image, display

    static_png = figure_png(exploration_figure(
        X, Y, [(s, "plain") for s in EXPLORER_STATIC_SCALES],
        title=_("One row per scale s (rule s × randn), each with the explorer's three plots.")))
    try:
        import ipywidgets as widgets
    except ImportError:
        display(Image(static_png))
        print(_("Install ipywidgets and rerun this cell to get the slider."))
        return

    scale = widgets.FloatLogSlider(value=1.0, base=10, min=-3, max=2, step=EXPLORER_SLIDER_STEP, description="s",
                                   continuous_update=False, readout_format=".3g")
    rule = widgets.ToggleButtons(options=[(name, key) for key, name in EXPLORER_RULE_NAMES.items()],
                                 value="plain", description="rule")
    output = widgets.Output()

    def redraw(_change=None) -> None:
        png = figure_png(exploration_figure(X, Y, [(scale.value, rule.value)]))
        with output:
            output.clear_output(wait=True)
            display(Image(png))
            print(_("Left: the deep network's activations per layer (grey band: std from 0.1 to 10). "
                    "Middle: the short training's cost. Right: its boundary."))

    scale.observe(redraw, names="value")
    rule.observe(redraw, names="value")
    # Until the first change the widget shows the static grid: no second drawing.  Appended, not
    # captured with `with output:`, which can stall a headless run (nbgrader validate and
    # autograde, nbconvert) until its cell timeout: jupyter/nbclient#312.
    output.append_display_data(Image(static_png))
    output.append_stdout(_("Move the slider or pick a rule to draw one setting.") + "\n")
    explorer = widgets.VBox([widgets.HBox([scale, rule]), output])
    display(WidgetWithFallback(explorer, static_png,
                               _("An interactive explorer: run this cell in JupyterLab to get its slider.")))


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
            _("The data set {path} is missing. It ships with the assignment in the "
              "'datasets' folder next to init_utils.py: fetch the assignment again, or ask "
              "your instructor (it can be rebuilt with datasets/make_circles_h5.py).").format(path=path)
        )
    digest = file_sha256(path)
    if digest != DATASET_SHA256:
        raise ValueError(
            _("The data set {path} has been changed (SHA-256 {digest}..., expected "
              "{expected}...). Restore the original file from the assignment "
              "or rebuild it with datasets/make_circles_h5.py.").format(
                  path=path, digest=digest[:12], expected=DATASET_SHA256[:12])
        )
    with h5py.File(path, "r") as f:
        return (f["train_X"][()], f["train_Y"][()], f["test_X"][()], f["test_Y"][()])
