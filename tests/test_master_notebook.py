"""The master notebook, run top to bottom in a real kernel, reproduces the lesson's published numbers
and prints every number its text claims.

The seed figures are the ones printed in the 2022 English edition of the lesson (the specification).
Zeros and He runs reproduce to 1e-9 on any CPU.  The large-random run saturates the sigmoid, so which
outputs round to exactly 1.0 depends on the CPU's BLAS kernel; its costs after iteration 0 are
compared to 1 %.  The lesson's own demonstrations (signal sizes, gradient norms, the x0.01 and x1
runs, the deep network) are checked against values measured once with a separate script, with
tolerances that allow for BLAS rounding but not for a wrong claim.
"""

from __future__ import annotations

import math
import re

import nbformat
import pytest

from scripts.course import MASTER
from scripts.run_master import cell_text, cells_by_id, execute

SEED_ZEROS = [0.6931471805599453] * 10 + [0.6931471805599455] + [0.6931471805599453] * 4
SEED_RANDOM = [math.inf, 0.6247924745506072, 0.5980258056061102, 0.5637539062842213, 0.5501256393526495,
               0.5443826306793814, 0.5373895855049121, 0.47157999220550006, 0.39770475516243037,
               0.3934560146692851, 0.3920227137490125, 0.38913700035966736, 0.3861358766546214,
               0.38497629552893475, 0.38276694641706693]
SEED_HE = [0.8830537463419761, 0.6879825919728063, 0.6751286264523371, 0.6526117768893805, 0.6082958970572938,
           0.5304944491717495, 0.4138645817071794, 0.3117803464844441, 0.23696215330322562, 0.1859728720920684,
           0.15015556280371808, 0.12325079292273551, 0.09917746546525937, 0.08457055954024283,
           0.07357895962677366]
SEED_ACCURACY = {"train_zeros": (0.5, 0.5), "train_random": (0.83, 0.86),
                 "train_he": (0.9933333333333333, 0.96)}

COST_LINE = re.compile(r"^Cost after iteration (\d+): (\S+)$", re.M)
ACCURACY_LINE = re.compile(r"^Accuracy: (\S+)$", re.M)


@pytest.fixture(scope="module")
def executed():
    return execute(MASTER)


def printed_costs(text: str) -> list[float]:
    pairs = [(int(i), float(c)) for i, c in COST_LINE.findall(text)]
    assert [i for i, _ in pairs] == list(range(0, 15000, 1000)), "one cost line every 1000 iterations"
    return [c for _, c in pairs]


def test_master_runs_top_to_bottom_without_errors(executed):
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []


def test_zeros_costs_match_the_seed(executed):
    assert printed_costs(cell_text(executed, "train_zeros")) == pytest.approx(SEED_ZEROS, abs=1e-9)


def test_he_costs_match_the_seed(executed):
    assert printed_costs(cell_text(executed, "train_he")) == pytest.approx(SEED_HE, abs=1e-9)


def test_large_random_costs_match_the_seed_within_blas_sensitivity(executed):
    costs = printed_costs(cell_text(executed, "train_random"))
    assert costs[0] == math.inf
    assert costs[1:] == pytest.approx(SEED_RANDOM[1:], rel=0.01)


def test_costs_are_printed_at_full_precision(executed):
    first_he_line = COST_LINE.search(cell_text(executed, "train_he")).group(0)
    assert first_he_line == "Cost after iteration 0: 0.8830537463419761"


@pytest.mark.parametrize("training", sorted(SEED_ACCURACY))
def test_accuracies_match_the_seed(executed, training):
    train_acc, test_acc = (float(a) for a in ACCURACY_LINE.findall(cell_text(executed, training)))
    assert (train_acc, test_acc) == pytest.approx(SEED_ACCURACY[training], abs=1e-9)


def test_each_training_plots_cost_and_decision_boundary(executed):
    cells = cells_by_id(executed)
    for grade_id in ("load_data", "train_zeros", "plot_zeros", "train_random", "plot_random",
                     "train_he", "plot_he"):
        assert any("image/png" in o.get("data", {}) for o in cells[grade_id].outputs), grade_id


def test_cost_plots_count_iterations_not_hundreds(executed):
    source = cells_by_id(executed)["model"].source
    assert "record_every=10)" in source and "costs_every_10[::100]" in source and "i * 1000" in source
    assert "every=10" in source and "hundreds" not in source


def test_large_random_caption_says_what_its_dense_curve_and_inset_show(executed):
    """Measured with a separate script (train recording every 10 iterations): the cost is inf at
    iterations 0-40, 70 and 240, jumps between 0.68 and 25.8 until 570, is 0.62 at 1000 and 0.38 at the
    end, and drops from 0.54 to 0.40 between 6000 and 8000.  The saturated start depends on BLAS rounding,
    so the path's details are compared loosely."""
    cell = cells_by_id(executed)["train_random"]
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
    caption = next(line for line in cell_text(executed, "train_random").splitlines() if line.startswith("Inset:"))
    infinite, low, high, settled = re.search(r"inf at iterations ([\d, ]+) \(the triangles\) and jumps between (\S+) "
                                             r"and (\S+) in between; from iteration (\d+) on it stays below 1", caption).groups()
    assert infinite.startswith("0, 10, 20") and all(int(i) < 1000 for i in infinite.split(", "))
    assert float(low) == pytest.approx(0.68, abs=0.1) and float(high) == pytest.approx(25.8, rel=0.1)
    assert 400 <= int(settled) <= 800
    start, end, before, after = (float(v) for v in re.search(
        r"from (\S+) at 1000 to (\S+), steepest from (\S+) to (\S+) between 6000 and 8000", caption).groups())
    assert (start, end, before, after) == pytest.approx((0.62, 0.38, 0.54, 0.40), abs=0.011)



def test_he_caption_follows_the_printed_costs(executed):
    """Each number of the line under He's cost plot is a printed cost, rounded: 0.88 at 0, 0.69 at 1000,
    0.61 at 4000, 0.24 at 8000 and 0.07 at 14000."""
    text = cell_text(executed, "train_he")
    costs = printed_costs(text)
    caption = next(line for line in text.splitlines() if line.startswith("The cost falls through the whole run"))
    claimed = re.search(r"from (\S+) to (\S+) by iteration 1000, slowly to (\S+) at 4000, steeply to (\S+) at 8000, "
                        r"then more slowly to (\S+) at 14000\.$", caption).groups()
    assert [float(v) for v in claimed] == [round(costs[i], 2) for i in (0, 1, 4, 8, 14)]
    # "slowly, steeply, more slowly": the fall from 4000 to 8000 is the steepest of the three stretches
    assert (costs[4] - costs[8]) / 4 > max((costs[1] - costs[4]) / 3, (costs[8] - costs[14]) / 6)

# Claims checked by their printed lines alone: {what the cell shows: (cell id, lines it prints)}.
PRINTED_LINES = {
    "symmetry_demo_shows_identical_hidden_units": ("symmetry_demo", [
        "largest |weight| in W1 after training: 0.0",
        "largest difference between any row and the first row: 0.0"]),
    "sigmoid_rounding_thresholds_are_printed": ("saturation_demo", [
        "sigmoid(z) == 1.0 exactly for z above 36.74\n",
        "sigmoid(z) == 0.0 exactly only for z below -709.78\n"]),
}


@pytest.mark.parametrize(("grade_id", "lines"), PRINTED_LINES.values(), ids=PRINTED_LINES.keys())
def test_cell_prints_its_claim(executed, grade_id, lines):
    text = cell_text(executed, grade_id)
    assert [line for line in lines if line not in text] == []


def test_last_bias_of_zero_network_stays_put_because_the_classes_are_balanced(executed):
    text = cell_text(executed, "symmetry_demo")
    assert "fraction of training labels equal to 1: 0.5\n" in text
    db3 = float(re.search(r"db3 = 0.5 - 0.5 = (\S+) \(zero up to rounding\)", text).group(1))
    b3 = float(re.search(r"last bias after training: b3 = (\S+)", text).group(1))
    assert abs(db3) < 1e-15 and abs(b3) < 1e-12


def test_constant_network_draws_its_straight_boundary(executed):
    cell = cells_by_id(executed)["plot_constant"]
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
    accuracy = float(re.search(r"train accuracy after 2000 iterations: (\S+)%", cell_text(executed, "plot_constant")).group(1))
    assert accuracy == pytest.approx(52.3, abs=0.05)


def test_comparison_table_comes_from_the_runs(executed):
    """The table is computed, so its numbers equal the printed runs (rounded)."""
    rows = {line[:15].strip(): line[15:].split() for line in cell_text(executed, "results_table").splitlines()[1:6]}
    assert list(rows) == ["zeros", "randn × 10", "He", "randn × 0.01", "randn × 1"]
    assert rows["zeros"][:4] == ["0.6931", "0.6931", "50.00%", "50.00%"]
    assert rows["He"][:4] == ["0.8831", "0.0736", "99.33%", "96.00%"]
    assert rows["randn × 10"][0] == "inf" and rows["randn × 10"][2:4] == ["83.00%", "86.00%"]
    assert rows["randn × 0.01"][:4] == ["0.6931", "0.6931", "46.33%", "48.00%"]
    assert rows["randn × 1"][:4] == ["1.9698", "0.0637", "99.67%", "96.00%"]


def markdown(grade_id: str | None = None) -> str:
    cells = [c for c in nbformat.read(MASTER, 4).cells if c.cell_type == "markdown"]
    return " ".join(c.source for c in cells if grade_id in (None, c.metadata["nbgrader"]["grade_id"]))


def numbers_after(label: str, text: str) -> list[float]:
    """The comma-separated numbers printed after ``label`` on its line."""
    line = next(line for line in text.splitlines() if label in line)
    return [float(v) for v in line.split(label, 1)[1].split(",")]


def test_notebook_explains_he_multiplies_by_sqrt_2_over_n():
    text = markdown()
    assert "**multiply** them by $\\sqrt{2 / n^{[l-1]}}$" in text
    assert "He divides" not in text and "divides them" not in text


def test_large_random_signal_explodes_layer_by_layer(executed):
    text = cell_text(executed, "saturation_demo")
    assert numbers_after("randn × 10, iteration 0: std of z1, z2, z3 = ", text) == pytest.approx([8.86, 241, 2240], rel=0.01)
    assert numbers_after("randn × 10, iteration 0: median |z3| = ", text)[0] == pytest.approx(3787, rel=0.01)


def test_large_random_gradients_explode_and_he_gradients_do_not(executed):
    text = cell_text(executed, "small_signal")
    large = numbers_after("randn × 10,   iteration 0: gradient norms |dW1|, |dW2|, |dW3| = ", text)
    he = numbers_after("He,           iteration 0: gradient norms |dW1|, |dW2|, |dW3| = ", text)
    assert large == pytest.approx([81.2, 88.4, 155], rel=0.01)
    assert he == pytest.approx([0.14, 0.32, 0.42], rel=0.03)
    assert numbers_after("randn × 10, iteration 0: gradient norms |dW1|, |dW2|, |dW3| = ",
                         cell_text(executed, "saturation_demo")) == large


def test_saturation_is_gone_within_100_steps(executed):
    text = cell_text(executed, "saturation_demo")
    assert "after 0 steps: 300 of 300 outputs are exactly 0 or 1, 150 of them on the wrong side" in text
    assert "after 100 steps: 0 of 300 outputs are exactly 0 or 1" in text
    before, after = (float(c) for c in re.search(r"cost (\S+) at iteration 10000, (\S+) at iteration 14000", text).groups())
    assert after < before


def test_small_random_run_is_stuck_at_log_2(executed):
    text = cell_text(executed, "train_small")
    assert printed_costs(text) == pytest.approx([math.log(2)] * 15, abs=1e-6)
    train_acc, test_acc = (float(a) for a in ACCURACY_LINE.findall(text))
    assert (train_acc, test_acc) == pytest.approx((0.4633333333333333, 0.48), abs=1e-9)
    signal = cell_text(executed, "small_signal")
    assert numbers_after("randn × 0.01, iteration 0: std of z1, z2, z3 = ", signal) == pytest.approx([0.0089, 0.00024, 2.2e-6], rel=0.03)
    assert max(numbers_after("randn × 0.01, iteration 0: gradient norms |dW1|, |dW2|, |dW3| = ", signal)) < 2e-5
    assert "zeros and ×0.01 start there (to the sixth decimal)" in markdown("compare_intro")  # the costs' abs=1e-6 above


def test_plain_randn_times_one_is_close_to_he_in_this_network(executed):
    text = cell_text(executed, "train_one")
    costs = printed_costs(text)
    assert costs[-1] == pytest.approx(0.0637, abs=5e-4) and abs(costs[-1] - SEED_HE[-1]) < 0.02
    assert tuple(float(a) for a in ACCURACY_LINE.findall(text)) == pytest.approx((0.9966666666666667, 0.96), abs=1e-9)
    assert "He's factors in this network, layers 1, 2, 3: 1.000, 0.447, 0.632" in text


DEEP_LINE = re.compile(r"^(.+?)\s+activation std: layer 1 (\S+), layer 10 (\S+) \(×(\S+) per layer\); std of dW1: (\S+)$", re.M)


def test_deep_network_spreads_vanish_explode_or_stay_near_one(executed):
    rows = {m[0].strip(): [float(v) for v in m[1:]] for m in DEEP_LINE.findall(cell_text(executed, "deep_spreads"))}
    assert list(rows) == ["randn × 0.01", "randn × 1", "LeCun, sqrt(1/n_in)", "Glorot, sqrt(2/(n_in+n_out))",
                          "He, sqrt(2/n_in)"]
    small, large, lecun, glorot, he = rows.values()
    assert small[1] < 1e-10 and small[2] == pytest.approx(0.07, abs=0.005) and small[3] < 1e-10
    assert large[1] > 1e7 and large[2] == pytest.approx(7.07, abs=0.2) and large[3] > 1e5
    assert lecun == glorot and lecun[2] == pytest.approx(0.71, abs=0.03)
    assert 0.5 < he[0] < 2 and 0.5 < he[1] < 2 and he[2] == pytest.approx(1.0, abs=0.05)


def test_every_figure_has_a_caption_line_under_it(executed):
    for cell in executed.cells:
        outputs = cell.get("outputs", [])
        for i, output in enumerate(outputs):
            if "image/png" in output.get("data", {}) and "application/vnd.jupyter.widget-view+json" not in output["data"]:
                grade_id = cell.metadata["nbgrader"]["grade_id"]
                assert i + 1 < len(outputs) and outputs[i + 1].output_type == "stream", grade_id
                caption = outputs[i + 1].text.splitlines()[0]
                assert caption.endswith(".") and len(caption) > 20, (grade_id, caption)


def test_explorer_carries_the_widget_and_a_static_fallback(executed):
    cell = cells_by_id(executed)["explore"]
    assert cell.metadata["nbgrader"] == {"grade": False, "grade_id": "explore", "locked": True,
                                         "schema_version": 3, "solution": False, "task": False}
    bundles = [o["data"] for o in cell.outputs if o.output_type == "display_data"]
    widget = [b for b in bundles if "application/vnd.jupyter.widget-view+json" in b]
    assert len(widget) == 1 and "image/png" in widget[0] and "JupyterLab" in widget[0]["text/plain"]


def test_students_are_asked_to_predict_before_they_run():
    text = markdown()
    assert text.count("<details>") >= 8 and text.count("<b>Predict first:</b>") >= 6


def test_exercises_give_formulas_not_code_lines():
    for grade_id in ("random_intro", "he_intro"):
        text = markdown(grade_id)
        assert "np.random.randn(layers_dims" not in text and 'parameters["W" + str(l)]' not in text, grade_id
        assert "G^{[l]}" in text, grade_id


def test_after_each_exercise_a_line_says_what_to_do_if_its_test_failed():
    for grade_id in ("zeros_train_intro", "random_train_intro", "he_train_intro"):
        assert markdown(grade_id).startswith("**If the test above failed, fix your function first:**"), grade_id
        assert "a mistake in the values (a wrong scale, a wrong seed, a wrong number) would not stop it" in markdown(grade_id)


def test_the_three_rules_are_named_with_their_formulas():
    text = markdown("he_intro")
    assert "LeCun (1998) | $\\sqrt{1 / n^{[l-1]}}$" in text
    assert "Glorot, also called Xavier (2010) | $\\sqrt{2 / (n^{[l-1]} + n^{[l]})}$" in text
    assert "He, also called Kaiming (2015) | $\\sqrt{2 / n^{[l-1]}}$" in text
    assert "Xavier**, $\\sqrt{1 / n" not in markdown()


def test_large_random_weights_kill_layer_2_units_that_he_keeps(executed):
    """Measured with a separate script: 1 of layer 2's 5 ReLUs is dead at the start for both; x10 has
    4 dead after 50 steps and 3 from step 100 to the end, He 1 through step 1000."""
    text = cell_text(executed, "saturation_demo")
    for steps, large, he in ((0, 1, 1), (50, 4, 1), (100, 3, 1), (1000, 3, 1)):
        assert f"after {steps} steps: dead units in layer 2 (of 5): randn × 10: {large}, He: {he}\n" in text
    assert "after 15000 steps: dead units in layer 2 (of 5): randn × 10: 3\n" in text
    assert "four are dead after 50\nsteps and three from step 100 to the end" in markdown("random_explain")


def test_deep_weight_gradients_are_flat_across_layers_and_he_sits_22_times_above_lecun(executed):
    text = cell_text(executed, "deep_spreads")
    ratios = re.search(r"weight gradients, layer 10 / layer 1: (.+)$", text, re.M).group(1)
    assert [float(v) for v in re.findall(r" (\d\.\d\d)(?:,|$)", ratios)] == pytest.approx([0.81] * 5, abs=0.01)
    low, high = (float(v) for v in re.search(r"He's weight gradients / LeCun's, layer by layer: from (\S+) to (\S+)$", text, re.M).groups())
    assert low == pytest.approx(22.6, abs=0.1) and high == pytest.approx(22.6, abs=0.1)  # (1/sqrt(1/2))**9 = 22.63
    assert "about 0.81 times that of\nlayer 1" in markdown("deep_explain") and "about 22 times below He's" in markdown("deep_explain")


def test_pytorch_default_shrinks_a_relu_signal_by_0_41_per_layer(executed):
    text = cell_text(executed, "pytorch_default_check")
    predicted, measured = numbers_after("predicted factor per layer: sqrt(1/6) = ", text.replace("; measured from layer 1 to layer 10: ", ","))
    assert predicted == pytest.approx(math.sqrt(1 / 6), abs=5e-4) and measured == pytest.approx(0.408, abs=0.01)
    layer_10 = float(re.search(r"std of the activations at layer 10 \(the input's is 1\): (\S+);", text).group(1))
    assert 0.5e-4 < layer_10 < 2e-4  # "about 1e-4 after 10 layers"


def test_histograms_count_the_same_dead_relus_for_every_rule(executed):
    """Measured with a separate script (its own deep network, seed 0): 0, 0, 2, 1, 8, 3, 8, 7, 6, 8 %
    of the units of layers 1-10 output 0 for all 200 inputs, for every positive scale."""
    cell = cells_by_id(executed)["deep_histograms"]
    assert sum("image/png" in o.get("data", {}) for o in cell.outputs) == 1
    text = cell_text(executed, "deep_histograms")
    assert "dead ReLUs (0 for all 200 inputs), layers 1 to 10: 0%, 0%, 2%, 1%, 8%, 3%, 8%, 7%, 6%, 8%\n" in text
    assert "the same for every rule: True\n" in text
    assert "activations that are exactly 0, layer 10: 49%\n" in text


SATURATING_LINE = re.compile(r"^(.+?)\s+activation std: layer 1 (\S+), layer 10 (\S+); backward signal dz: layer 10 (\S+), "
                             r"layer 1 (\S+) \(×(\S+) per layer back\); dW layer 1 / layer 10: (\S+)$", re.M)


def test_saturating_units_make_the_backward_signal_fade_and_the_gain_keeps_it(executed):
    """Measured with a separate script: the backward signal shrinks x0.23 per layer with sigmoid and
    x0.86 with tanh and Glorot, grows x1.06 with the gain 5/3; ReLU with He x1.02."""
    rows = {m[0].strip(): [float(v) for v in m[1:]] for m in SATURATING_LINE.findall(cell_text(executed, "deep_saturating"))}
    assert list(rows) == ["tanh, Glorot", "tanh, 5/3 × Glorot", "sigmoid, Glorot", "ReLU, He"]
    assert rows["sigmoid, Glorot"][4] == pytest.approx(0.23, abs=0.01) and rows["sigmoid, Glorot"][5] < 1e-5
    assert rows["tanh, Glorot"][4] == pytest.approx(0.86, abs=0.01) and rows["tanh, Glorot"][:2] == pytest.approx([0.63, 0.21], abs=0.01)
    assert rows["tanh, 5/3 × Glorot"][4] == pytest.approx(1.06, abs=0.01)
    assert rows["tanh, 5/3 × Glorot"][:2] == pytest.approx([0.76, 0.64], abs=0.01)
    assert rows["ReLU, He"][4] == pytest.approx(1.02, abs=0.01)
    saturated = re.search(r"tanh, 5/3 × Glorot\s+saturated units \(\|a\| > 0.97\), layers 1 to 10: (.+)$",
                          cell_text(executed, "deep_saturating"), re.M).group(1)
    assert [int(v.rstrip("%")) for v in saturated.split(", ")][3:] == pytest.approx([5] * 7, abs=1)
    text = markdown("saturating_explain")
    assert "×0.86 per layer" in text and "×1.06 per layer back" in text and "about 5 % from layer 4 on" in text
    sigmoid_ratio = rows["sigmoid, Glorot"][5]  # dW layer 1 / layer 10
    assert f"(the ratio {sigmoid_ratio:.1e} printed above)" in text and "about 250 000 times smaller" in text
    assert 1 / sigmoid_ratio == pytest.approx(250_000, rel=0.1)


def test_the_explorer_question_about_he_has_its_answer_on_the_slider(executed):
    """Measured with a separate script: He's layer 10 has std 0.126 at s = 10**-0.08 and 7.98 at 10**0.1,
    0.08 and 12.6 one slider step further out."""
    text = cell_text(executed, "explore_answer")
    assert "s × He: layer 10 stays in the grey band for s from 0.832 to 1.259 on the slider\n" in text
    assert "each step multiplies $s$ by 1.047" in markdown("explore_intro")


def test_the_first_cost_of_a_network_that_knows_nothing_is_printed(executed):
    assert "log 2 = 0.6931: the first cost of a network that knows nothing" in cell_text(executed, "results_table")
    assert "A habit worth keeping: predict the first cost." in markdown("zeros_train_intro")


def test_the_three_surprising_results_are_predicted_first():
    assert "What will the first cost be with weights of size 10?" in markdown("random_train_intro")
    assert "will ×1 learn about as well as He in this network" in markdown("small_explain")
    assert "by how much will each layer multiply the size of the signal" in markdown("one_explain")


def test_the_exercise_warns_that_randn_and_zeros_take_their_sizes_differently():
    text = markdown("random_intro")
    assert "`np.random.randn(rows, columns)`" in text and "`np.zeros((rows, columns))`" in text
