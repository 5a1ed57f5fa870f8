"""init_utils.py: numerics the notebook relies on, warnings policy and the frozen data set."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import init_utils
from coursekit.read import load_course
from coursekit.sandbox import Call, Limits, Sandbox
from scripts.course import RELEASE, ROOT


def test_sigmoid_saturates_without_overflow_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = init_utils.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    assert s.tolist() == [0.0, 0.5, 1.0]


def test_compute_loss_matches_cross_entropy():
    a3 = np.array([[0.9, 0.2, 0.6]])
    Y = np.array([[1, 0, 1]])
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.6)) / 3
    assert init_utils.compute_loss(a3, Y) == pytest.approx(expected, rel=1e-15)


def test_compute_loss_is_inf_for_certain_wrong_prediction_without_warning():
    a3 = np.array([[1.0, 0.0, 0.5]])
    Y = np.array([[0, 1, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = init_utils.compute_loss(a3, Y)
    assert loss == float("inf") and isinstance(loss, float)


def test_compute_loss_is_finite_for_certain_right_prediction():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = init_utils.compute_loss(np.array([[1.0, 0.0]]), np.array([[1, 0]]))
    assert loss == 0.0


def test_zero_network_predicts_one_half_and_log2_cost():
    X = np.array([[0.3, -1.2], [0.5, 0.7]])
    params = {f"W{l}": np.zeros(s) for l, s in enumerate([(4, 2), (3, 4), (1, 3)], start=1)}
    params.update({f"b{l}": np.zeros((n, 1)) for l, n in enumerate([4, 3, 1], start=1)})
    a3, _ = init_utils.forward_propagation(X, params)
    assert a3.tolist() == [[0.5, 0.5]]
    assert init_utils.compute_loss(a3, np.array([[1, 0]])) == pytest.approx(np.log(2), rel=1e-15)


def test_backward_propagation_matches_finite_differences():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2, 5))
    Y = (rng.random((1, 5)) > 0.5).astype(int)
    dims = [2, 4, 3, 1]
    params = {}
    for l in range(1, 4):
        params[f"W{l}"] = rng.normal(size=(dims[l], dims[l - 1]))
        params[f"b{l}"] = rng.normal(size=(dims[l], 1))
    _, cache = init_utils.forward_propagation(X, params)
    grads = init_utils.backward_propagation(X, Y, cache)
    eps = 1e-6
    for name in ("W1", "b2", "W3"):
        bumped = {k: v.copy() for k, v in params.items()}
        bumped[name][0, 0] += eps
        lowered = {k: v.copy() for k, v in params.items()}
        lowered[name][0, 0] -= eps
        numeric = (init_utils.compute_loss(init_utils.forward_propagation(X, bumped)[0], Y)
                   - init_utils.compute_loss(init_utils.forward_propagation(X, lowered)[0], Y)) / (2 * eps)
        assert grads["d" + name][0, 0] == pytest.approx(numeric, rel=1e-4, abs=1e-8)


def test_predict_prints_accuracy_and_returns_integer_labels(capsys):
    params = {"W1": np.ones((1, 2)), "b1": np.zeros((1, 1)), "W2": np.ones((1, 1)), "b2": np.zeros((1, 1)),
              "W3": np.ones((1, 1)), "b3": np.array([[-1.0]])}
    X = np.array([[0.0, 3.0], [0.0, 3.0]])
    p = init_utils.predict(X, np.array([[0, 0]]), params)
    assert p.tolist() == [[0, 1]] and np.issubdtype(p.dtype, np.integer)
    assert capsys.readouterr().out == "Accuracy: 0.5\n"


def test_load_dataset_shapes_and_labels():
    train_X, train_Y, test_X, test_Y = init_utils.load_dataset()
    assert train_X.shape == (2, 300) and train_Y.shape == (1, 300)
    assert test_X.shape == (2, 100) and test_Y.shape == (1, 100)
    assert set(np.unique(train_Y)) == {0, 1} and train_Y.sum() == 150


def test_load_dataset_reports_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="is missing.*datasets"):
        init_utils.load_dataset(tmp_path / "circles.h5")


def test_load_dataset_rejects_altered_file(tmp_path):
    altered = tmp_path / "circles.h5"
    shutil.copy(init_utils.DATASET_PATH, altered)
    data = bytearray(altered.read_bytes())
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="has been changed.*Restore the original"):
        init_utils.load_dataset(altered)


def test_dataset_script_rebuilds_identical_file():
    result = subprocess.run([sys.executable, str(ROOT / "datasets" / "make_circles_h5.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert init_utils.DATASET_SHA256 in result.stdout


@pytest.mark.parametrize("module", ["init_utils.py", "public_tests.py"])
def test_helpers_import_cleanly_with_warnings_as_errors(module):
    result = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module[:-3]}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


REMOVED_NUMPY_ALIASES = {"int", "float", "bool", "object", "str", "long", "unicode", "complex"}


@pytest.mark.parametrize("module", ["init_utils.py", "public_tests.py"])
def test_helpers_use_no_removed_numpy_aliases(module):
    import ast
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"}
    assert used & REMOVED_NUMPY_ALIASES == set()


def test_large_random_training_raises_no_warning():
    """The saturated run (cost inf at first) is the hardest case for overflow and log(0)."""
    train_X, train_Y, _, _ = init_utils.load_dataset()
    np.random.seed(3)
    dims = [2, 10, 5, 1]
    params = {}
    for l in range(1, 4):
        params[f"W{l}"] = np.random.randn(dims[l], dims[l - 1]) * 10
        params[f"b{l}"] = np.zeros((dims[l], 1))
    costs = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(200):
            a3, cache = init_utils.forward_propagation(train_X, params)
            costs.append(init_utils.compute_loss(a3, train_Y))
            grads = init_utils.backward_propagation(train_X, train_Y, cache)
            params = init_utils.update_parameters(params, grads, 0.01)
    assert costs[0] == float("inf") and np.isfinite(costs[-1])


# --- the lesson's demonstrations and figures ---------------------------------------------------

@pytest.fixture
def agg():
    """Matplotlib drawing off screen; every figure is closed afterwards."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    yield plt
    plt.close("all")


def test_scaled_parameters_draw_the_same_numbers_as_the_seeded_exercises():
    np.random.seed(3)
    expected = [np.random.randn(4, 3), np.random.randn(2, 4)]
    params = init_utils.scaled_parameters([3, 4, 2], 0.01, "plain")
    assert np.array_equal(params["W1"], expected[0] * 0.01) and np.array_equal(params["W2"], expected[1] * 0.01)
    he = init_utils.scaled_parameters([3, 4, 2], 1.0, "he")
    assert np.allclose(he["W2"], expected[1] * np.sqrt(2 / 4), rtol=1e-15)
    assert not np.any(params["b1"]) and params["b2"].shape == (2, 1)


def test_cost_plot_marks_an_infinite_cost_instead_of_dropping_it(agg):
    _, ax = agg.subplots()
    init_utils.draw_costs(ax, {"randn × 10": [float("inf"), 0.6, 0.5]})
    curve, inf_mark = ax.get_lines()
    assert list(curve.get_xdata()) == [1000, 2000] and list(curve.get_ydata()) == [0.6, 0.5]
    assert list(inf_mark.get_xdata()) == [0] and inf_mark.get_marker() == "^"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["randn × 10", init_utils.INF_NOTE]
    assert ax.get_ylim()[0] == 0


def test_a_boundary_of_one_class_is_filled_with_that_class_colour(agg):
    import matplotlib.colors as mcolors
    _, ax = agg.subplots()
    X = np.array([[0.5, -0.5], [0.5, -0.5]])
    init_utils.draw_decision_boundary(ax, lambda points: np.zeros(len(points)), X, np.array([[0, 1]]))
    fill = ax.collections[0]  # one filled region per level: below 0.5, above 0.5
    below, above = fill.get_paths()
    assert len(below.vertices) > 0 and len(above.vertices) == 0
    assert mcolors.to_hex(fill.get_facecolor()[0]) == mcolors.to_hex(init_utils.FILL_COLOURS[0])
    assert ax.get_aspect() == 1.0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["label 0 (outer circle)", "label 1 (inner circle)",
                      "filled blue: the network predicts 0", "filled orange: the network predicts 1"]


def test_deep_network_spreads_are_deterministic_and_he_keeps_the_size():
    he = init_utils.deep_relu_spreads(lambda n_in, n_out: np.sqrt(2 / n_in))
    assert he == init_utils.deep_relu_spreads(lambda n_in, n_out: np.sqrt(2 / n_in))
    activations, gradients = he
    assert len(activations) == len(gradients) == 10
    assert all(0.5 < a < 2 for a in activations)
    small, _ = init_utils.deep_relu_spreads(lambda n_in, n_out: 0.01)
    assert small[-1] < 1e-10 and small[-1] / small[0] == pytest.approx((0.01 * np.sqrt(50)) ** 9, rel=0.5)


def test_the_same_exploration_setting_draws_the_same_picture(agg):
    train_X, train_Y, _, _ = init_utils.load_dataset()
    first = init_utils.figure_png(init_utils.exploration_figure(train_X, train_Y, [(0.1, "he")]))
    again = init_utils.figure_png(init_utils.exploration_figure(train_X, train_Y, [(0.1, "he")]))
    other = init_utils.figure_png(init_utils.exploration_figure(train_X, train_Y, [(1.0, "he")]))
    assert first == again != other


def test_explorer_without_ipywidgets_shows_the_static_grid(agg, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # makes `import ipywidgets` raise ImportError
    train_X, train_Y, _, _ = init_utils.load_dataset()
    init_utils.explore_initialization(train_X, train_Y)
    out = capsys.readouterr().out
    assert "Image object" in out and "Install ipywidgets and rerun this cell to get the slider." in out


def test_the_explorer_says_no_boundary_where_the_network_outputs_one_half_everywhere():
    """At s = 0.001 every output is within 1e-5 of 0.5 (2.6e-9, measured with a separate script)."""
    train_X, train_Y, _, _ = init_utils.load_dataset()
    fig = init_utils.exploration_figure(train_X, train_Y, [(0.001, "lecun"), (1.0, "he")])
    flat, learned = ([t.get_text() for t in ax.texts] for ax in fig.axes[2::3])  # the boundary panels
    init_utils.pyplot().close(fig)
    assert flat == ["No boundary: the network\noutputs 0.5 everywhere"] and learned == []


def test_every_explorer_setting_keeps_the_deep_network_on_its_axes():
    low, high = init_utils.EXPLORER_SPREAD_LIMITS
    for s, rule in ((0.001, "lecun"), (0.001, "he"), (0.001, "plain"), (100.0, "plain"), (100.0, "he")):
        spreads, _ = init_utils.deep_relu_spreads(lambda n_in, n_out, s=s, rule=rule: s * init_utils.EXPLORER_RULES[rule](n_in, n_out))
        assert low < min(spreads) and max(spreads) < high, (s, rule)


def labelled_decades(low: float, high: float) -> list[int]:
    """The powers of ten that a log axis from ``low`` to ``high`` labels after label_every_decade."""
    fig, ax = init_utils.pyplot().subplots()
    ax.plot([1, 2], [low, high])
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    init_utils.label_every_decade(ax.yaxis)
    fig.canvas.draw()
    labelled = sorted(round(np.log10(tick.get_loc())) for tick in ax.yaxis.get_major_ticks()
                      if low <= tick.get_loc() <= high and tick.label1.get_text())
    init_utils.pyplot().close(fig)
    return labelled


@pytest.mark.parametrize(("low", "high"), [(1e-12, 1e2), (2.5e-12, 2.5e8)])  # the second: the deep network's 22 decades
def test_log_axes_label_every_decade(low, high):
    assert labelled_decades(low, high) == list(range(int(np.ceil(np.log10(low))), int(np.floor(np.log10(high))) + 1))


def test_the_explorers_63_decades_are_labelled_every_fifth():
    assert labelled_decades(*init_utils.EXPLORER_SPREAD_LIMITS) == list(range(-30, 31, 5))


def test_layer_histogram_legend_sits_above_every_bar(agg):
    fig, axes = agg.subplots(1, 2)
    deep = init_utils.deep_network(lambda n_in, n_out: 0.01)
    init_utils.draw_layer_histograms(axes[0], deep.activations)
    init_utils.draw_layer_histograms(axes[1], init_utils.deep_network(lambda n_in, n_out: 5 / 3 * np.sqrt(1 / n_in), "tanh").activations,
                                     log=False)
    fig.canvas.draw()
    for ax in axes:
        highest = max(max(patch.get_data().values) for patch in ax.patches)
        top_of_bars = ax.transData.transform((1, highest))[1]
        assert ax.get_legend().get_window_extent().y0 > top_of_bars


def test_the_explorers_cost_legend_sits_under_its_plot(agg):
    train_X, train_Y, _, _ = init_utils.load_dataset()
    fig = init_utils.exploration_figure(train_X, train_Y, [(10.0, "plain")])
    fig.canvas.draw()
    cost = fig.axes[1]
    names = [t.get_text() for t in cost.get_legend().get_texts()]
    assert names[0] == "s × randn" and names[1].replace("\n", " ") == init_utils.INF_NOTE
    assert cost.get_legend().get_window_extent().y1 < cost.get_window_extent().y0
    agg.close(fig)


def test_deep_weight_gradient_histograms_stay_in_place_and_widen_with_depth():
    """What the histogram figure's caption says of the weight gradients, for every rule of the lesson:
    the peaks of the ten layers lie within a factor of 3, and layer 10's spread (std of log10|dW|)
    is wider than layer 1's (0.82 against 0.49 decades, measured with a separate script)."""
    for scale in (0.01, 1.0, np.sqrt(1 / 100), np.sqrt(2 / 100)):
        gradients = init_utils.deep_network(lambda n_in, n_out, scale=scale: scale).weight_gradients
        peaks, spreads = [], []
        for dW in gradients:
            magnitudes = np.abs(dW[dW != 0])
            counts, edges = np.histogram(magnitudes, bins=np.logspace(np.log10(magnitudes.min()), np.log10(magnitudes.max()), 80))
            peaks.append(np.sqrt(edges[counts.argmax()] * edges[counts.argmax() + 1]))
            spreads.append(np.std(np.log10(magnitudes)))
        assert max(peaks) / min(peaks) < 3 and spreads[-1] > spreads[0] + 0.2, scale


def test_the_release_data_set_and_plotting_work_inside_the_sandbox():
    # A sandbox as this course's grader builds it: preloading what nbgrader_config.py lists
    # (Matplotlib, h5py), which a bare Sandbox() does not; the release folder is its working directory.
    with Sandbox(preload=load_course(ROOT).settings.sandbox_preload) as box:
        code = textwrap.dedent("""
            import matplotlib.pyplot as plt
            from init_utils import load_dataset, plot_dataset
            def data():
                train_X, train_Y, test_X, test_Y = load_dataset()
                plot_dataset(train_X, train_Y)
                plt.savefig("plot.png")
                return [train_X.shape, train_Y.shape, test_X.shape, test_Y.shape]
            """)
        result = box.run(code, [Call("data")], workdir_files=RELEASE.parent, limits=Limits(wall_seconds=60))
        assert result.reason is None and result.calls[0].error is None
        assert result.calls[0].value == [(2, 300), (1, 300), (2, 100), (1, 100)]
