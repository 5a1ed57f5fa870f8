"""public_tests.py must pass every correct initializer and fail every wrong one with a useful hint.

The wrong initializers below are the mistakes students really make; each must raise an
AssertionError whose message names the mistake.  The correct ones are written in different
styles (loops, comprehensions, keyword arguments, np.random.normal) and must all pass.
"""

from __future__ import annotations

import math
import re
import shutil

import nbclient
import nbformat
import numpy as np
import pytest

from public_tests import (
    initialize_parameters_he_test,
    initialize_parameters_random_test,
    initialize_parameters_zeros_test,
)
from scripts.course import ROOT

# --- correct implementations, in several styles -------------------------------------------

def zeros_loop(layers_dims):
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.zeros((layers_dims[l], layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def zeros_comprehension(layers_dims):
    pairs = list(zip(layers_dims[1:], layers_dims[:-1]))
    weights = {f"W{i}": np.zeros(shape=(n, m)) for i, (n, m) in enumerate(pairs, start=1)}
    biases = {f"b{i}": np.zeros(shape=(n, 1), dtype=np.float32) for i, (n, _) in enumerate(pairs, start=1)}
    return {**weights, **biases}


def zeros_like_style(layers_dims):
    parameters = {}
    for l, (n, m) in enumerate(zip(layers_dims[1:], layers_dims), start=1):
        parameters[f"W{l}"] = np.zeros_like(np.empty((n, m)))
        parameters[f"b{l}"] = np.full((n, 1), 0.0)
    return parameters


def seeded(scale, seed=3):
    """A correct seeded initializer with the given per-layer scale(n_prev)."""
    def initialize(layers_dims):
        np.random.seed(seed)
        parameters = {}
        for l in range(1, len(layers_dims)):
            parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * scale(layers_dims[l - 1])
            parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
        return parameters
    return initialize


def random_with_normal(layers_dims):
    np.random.seed(3)
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.random.normal(0.0, 10.0, size=(layers_dims[l], layers_dims[l - 1]))),
        (f"b{l}", np.zeros((layers_dims[l], 1))))}


def he_with_math_sqrt(layers_dims):
    np.random.seed(3)
    parameters = {}
    L = len(layers_dims) - 1
    for l in range(1, L + 1):
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))  # biases first: draws no random numbers
        parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * math.sqrt(2.0) / math.sqrt(layers_dims[l - 1])
    return parameters


def he_standard_normal(layers_dims):
    np.random.seed(3)
    parameters = {}
    for l in range(1, len(layers_dims)):
        shape = (layers_dims[l], layers_dims[l - 1])
        parameters[f"W{l}"] = np.random.standard_normal(shape) * (2 / layers_dims[l - 1]) ** 0.5
        parameters[f"b{l}"] = np.zeros((layers_dims[l], 1))
    return parameters


@pytest.mark.parametrize("initializer", [zeros_loop, zeros_comprehension, zeros_like_style])
def test_zeros_accepts_correct_variants(initializer, capsys):
    initialize_parameters_zeros_test(initializer)
    assert "All tests passed." in capsys.readouterr().out


@pytest.mark.parametrize("initializer", [seeded(lambda n: 10), random_with_normal])
def test_random_accepts_correct_variants(initializer, capsys):
    initialize_parameters_random_test(initializer)
    assert "All tests passed." in capsys.readouterr().out


@pytest.mark.parametrize("initializer", [seeded(lambda n: np.sqrt(2 / n)), he_with_math_sqrt, he_standard_normal])
def test_he_accepts_correct_variants(initializer, capsys):
    initialize_parameters_he_test(initializer)
    assert "All tests passed." in capsys.readouterr().out


# --- wrong implementations ----------------------------------------------------------------

def zeros_layers_dims_1_everywhere(layers_dims):
    """The bug of one seed notebook: every layer sized like the first hidden layer."""
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.zeros((layers_dims[1], layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[1], 1))
    return parameters


def zeros_transposed(layers_dims):
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.zeros((layers_dims[l - 1], layers_dims[l]))), (f"b{l}", np.zeros((layers_dims[l], 1))))}


def zeros_flat_bias(layers_dims):
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.zeros((layers_dims[l], layers_dims[l - 1]))), (f"b{l}", np.zeros(layers_dims[l])))}


def zeros_integer_dtype(layers_dims):
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.zeros((layers_dims[l], layers_dims[l - 1]), dtype=int)), (f"b{l}", np.zeros((layers_dims[l], 1))))}


def zeros_off_by_one_loop(layers_dims):
    parameters = {}
    for l in range(1, len(layers_dims) - 1):
        parameters["W" + str(l)] = np.zeros((layers_dims[l], layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def zeros_returns_inside_the_loop(layers_dims):
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.zeros((layers_dims[l], layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
        return parameters


def zeros_returns_nothing(layers_dims):
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.zeros((layers_dims[l], layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))


def zeros_mutates_input(layers_dims):
    layers_dims.append(1)  # a "harmless" extra output layer
    return zeros_loop(layers_dims[:-1])


def zeros_with_ones(layers_dims):
    return {k: np.ones_like(v) for k, v in zeros_loop(layers_dims).items()}


def zeros_nested_lists(layers_dims):
    return {k: v.tolist() for k, v in zeros_loop(layers_dims).items()}


@pytest.mark.parametrize("initializer, hint", [
    (zeros_layers_dims_1_everywhere, "did you use layers_dims[1] for every layer?"),
    (zeros_transposed, "rows and columns are swapped"),
    (zeros_flat_bias, "a bias is a column vector"),
    (zeros_integer_dtype, "expected floating point"),
    (zeros_off_by_one_loop, "missing ['W2', 'b2']"),
    (zeros_returns_inside_the_loop, "is `return parameters` inside the loop?"),
    (zeros_returns_nothing, "did you forget `return parameters`?"),
    (zeros_mutates_input, "changed its input list"),
    (zeros_with_ones, "non-zero entries"),
    (zeros_nested_lists, "expected a NumPy array"),
])
def test_zeros_rejects_mistake_with_hint(initializer, hint):
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_zeros_test(initializer)
    assert hint in str(failure.value)


def test_zeros_layers_dims_1_message_names_shapes():
    """The wording asked for, on the seeds' example [3, 2, 1]."""
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_zeros_test(zeros_layers_dims_1_everywhere)
    assert "W2 has shape (2, 2), expected (1, 2): did you use layers_dims[1] for every layer?" in str(failure.value)


def random_without_seed(layers_dims):
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.random.randn(layers_dims[l], layers_dims[l - 1]) * 10), (f"b{l}", np.zeros((layers_dims[l], 1))))}


def random_seed_inside_loop(layers_dims):
    parameters = {}
    for l in range(1, len(layers_dims)):
        np.random.seed(3)
        parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * 10
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def random_random_biases(layers_dims):
    np.random.seed(3)
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * 10
        parameters["b" + str(l)] = np.random.randn(layers_dims[l], 1)
    return parameters


def random_uniform(layers_dims):
    np.random.seed(3)
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", np.random.rand(layers_dims[l], layers_dims[l - 1]) * 10), (f"b{l}", np.zeros((layers_dims[l], 1))))}


def random_default_rng(layers_dims):
    rng = np.random.default_rng(3)
    return {k: v for l in range(1, len(layers_dims)) for k, v in (
        (f"W{l}", rng.standard_normal((layers_dims[l], layers_dims[l - 1])) * 10), (f"b{l}", np.zeros((layers_dims[l], 1))))}


def returns_public_expected_only(layers_dims):
    """Hard-codes the seeds' [3, 2, 1] answer: must fail on the other shapes."""
    np.random.seed(3)
    return {"W1": np.random.randn(2, 3) * 10, "b1": np.zeros((2, 1)),
            "W2": np.random.randn(1, 2) * 10, "b2": np.zeros((1, 1))}


@pytest.mark.parametrize("initializer, hint", [
    (random_without_seed, "must set np.random.seed(3) itself"),
    (random_seed_inside_loop, "call np.random.seed(3) once, before the loop"),
    (random_random_biases, "is not all zeros"),
    (random_uniform, "not np.random.rand"),
    (random_default_rng, "call np.random.seed(3) once at the start of the function"),
    (seeded(lambda n: np.sqrt(2 / n)), "values look like He scaling"),
    (seeded(lambda n: 1.0), "without any scaling factor"),
    (seeded(lambda n: 0.01), "np.random.randn(...) * 0.01"),
    (seeded(lambda n: 10, seed=1), "call np.random.seed(3) once at the start"),
    (returns_public_expected_only, "W1 has shape (2, 3), expected (4, 2)"),
])
def test_random_rejects_mistake_with_hint(initializer, hint):
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_random_test(initializer)
    assert hint in str(failure.value)


@pytest.mark.parametrize("initializer, hint", [
    (seeded(lambda n: np.sqrt(1 / n)), "values look like Xavier scaling sqrt(1/n); He uses sqrt(2/n)"),
    (seeded(lambda n: 1 / np.sqrt(2 / n)), "He *multiplies*"),
    (seeded(lambda n: 10), "the large-random scaling"),
    (seeded(lambda n: 1.0), "without any scaling factor"),
    (random_without_seed, "must set np.random.seed(3) itself"),
])
def test_he_rejects_mistake_with_hint(initializer, hint):
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_he_test(initializer)
    assert hint in str(failure.value)


def he_scaled_by_current_layer(layers_dims):
    np.random.seed(3)
    parameters = {}
    for l in range(1, len(layers_dims)):
        parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * np.sqrt(2 / layers_dims[l])
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def test_he_rejects_scaling_by_current_layer():
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_he_test(he_scaled_by_current_layer)
    assert "size of the current layer" in str(failure.value)


def test_he_rejects_xavier_scaling():
    with pytest.raises(AssertionError, match=r"Xavier"):
        initialize_parameters_he_test(seeded(lambda n: np.sqrt(1 / n)))


def test_failure_names_the_call_that_failed():
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_he_test(seeded(lambda n: np.sqrt(1 / n)))
    assert str(failure.value).startswith("initialize([")


def test_stub_error_reaches_the_student_unchanged():
    def stub(layers_dims):
        raise NotImplementedError()
    with pytest.raises(NotImplementedError):
        initialize_parameters_zeros_test(stub)


def test_public_tests_ship_no_reference_solution():
    """Expected values are literals: the module never draws random numbers itself."""
    import ast

    # The root file itself: an in-process grader test may have left another `public_tests` (a
    # worker's copy in a folder since removed) in sys.modules.
    tree = ast.parse((ROOT / "public_tests.py").read_text(encoding="utf-8"))
    called = [ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)
              and not any(isinstance(part, ast.Constant) for part in ast.walk(node.func))]  # not _("...").format
    random_calls = [name for name in called if "random" in name]
    assert random_calls == []


# --- wrong scale, right random numbers: the message gives the factor used and the one expected ---

def he_with(factor):
    """He with the right draws but another factor per layer; factor(layers_dims, l)."""
    return seeded_by_layer(factor)


def seeded_by_layer(factor, seed_inside_loop=False):
    def initialize(layers_dims):
        np.random.seed(3)
        parameters = {}
        for l in range(1, len(layers_dims)):
            if seed_inside_loop:
                np.random.seed(3)
            parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * factor(layers_dims, l)
            parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
        return parameters
    return initialize


def he_kaiming_uniform(layers_dims):
    np.random.seed(3)
    parameters = {}
    for l in range(1, len(layers_dims)):
        limit = np.sqrt(6 / layers_dims[l - 1])
        parameters["W" + str(l)] = np.random.uniform(-limit, limit, (layers_dims[l], layers_dims[l - 1]))
        parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
    return parameters


def he_failure(initializer) -> str:
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_he_test(initializer)
    return str(failure.value)


def test_he_glorot_scaling_is_named_with_both_factors():
    message = he_failure(he_with(lambda d, l: np.sqrt(2 / (d[l - 1] + d[l]))))
    assert "Glorot scaling sqrt(2/(n_in + n_out))" in message
    assert "random numbers are right" in message and "seed" not in message
    assert "layer 1 uses ×0.63, He expects sqrt(2/3) = 0.82; layer 2 uses ×0.82, He expects sqrt(2/2) = 1" in message


def test_he_variance_instead_of_std_is_named_with_both_factors():
    message = he_failure(he_with(lambda d, l: 2 / d[l - 1]))
    assert "you multiplied by the variance 2/n" in message and "seed" not in message
    # layer 2 of [3, 2, 1] has 2/2 = 1 = sqrt(2/2): only layer 1 is wrong, and only it is named
    assert "only the scale is wrong: layer 1 uses ×0.67, He expects sqrt(2/3) = 0.82\n" in message
    assert message.startswith("initialize([3, 2, 1]): W1 differs from the expected values:")


def test_he_integer_division_is_named_with_the_zero_factor():
    message = he_failure(he_with(lambda d, l: np.sqrt(2 // d[l - 1])))
    assert "2 // n is integer division" in message and "seed" not in message
    assert "layer 1 uses ×0, He expects sqrt(2/3) = 0.82" in message


def test_he_root_of_two_over_n_is_named_with_both_factors():
    message = he_failure(he_with(lambda d, l: np.sqrt(2) / d[l - 1]))
    assert "np.sqrt(2) / n takes the square root of 2 only" in message and "seed" not in message
    assert "layer 1 uses ×0.47, He expects sqrt(2/3) = 0.82; layer 2 uses ×0.71, He expects sqrt(2/2) = 1" in message


def test_he_kaiming_uniform_is_recognised_as_uniform_draws():
    message = he_failure(he_kaiming_uniform)
    assert "your weights are uniform on [-1.4, 1.4] in layer 1, Kaiming-uniform" in message
    assert "np.random.randn, not np.random.rand or np.random.uniform" in message
    assert "seed" not in message


def test_he_input_size_for_every_layer_is_named_on_the_layer_it_breaks():
    message = he_failure(he_with(lambda d, l: np.sqrt(2 / d[0])))
    assert "every layer is scaled by layers_dims[0]" in message and "seed" not in message
    assert "W2 differs from the expected values" in message
    assert "layer 2 uses ×0.82, He expects sqrt(2/2) = 1" in message and "layer 1 uses" not in message


def test_he_xavier_with_seed_inside_loop_names_both_mistakes():
    message = he_failure(seeded_by_layer(lambda d, l: np.sqrt(1 / d[l - 1]), seed_inside_loop=True))
    assert "call np.random.seed(3) once, before the loop, not inside it" in message
    assert "The scale is wrong too: values look like Xavier scaling" in message
    assert "layer 1 uses ×0.58, He expects sqrt(2/3) = 0.82" in message


def test_random_with_a_wrong_factor_says_the_exercise_expects_ten():
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_random_test(seeded(lambda n: 5))
    assert "layer 1 uses ×5, this exercise expects ×10; layer 2 uses ×5, this exercise expects ×10" in str(failure.value)


def test_an_unknown_factor_gets_the_factors_without_a_guess():
    message = he_failure(he_with(lambda d, l: 0.5))
    assert "W1 and W2 differ from the expected values: your random numbers are right, only the scale is wrong: " \
           "layer 1 uses ×0.5, He expects sqrt(2/3) = 0.82; layer 2 uses ×0.5, He expects sqrt(2/2) = 1" in message


def test_factors_get_the_digits_that_tell_them_apart():
    # 0.81650 (He for n = 3) against 0.81658: two digits would print 0.82 twice
    message = he_failure(he_with(lambda d, l: np.sqrt(2 / d[l - 1]) * 1.0001))
    assert "layer 1 uses ×0.817, He expects sqrt(2/3) = 0.816;" in message


def test_one_mismatched_matrix_differs_in_the_singular():
    message = he_failure(he_with(lambda d, l: np.sqrt(2 / d[0])))
    assert "W2 differs from" in message and "differ from the expected values" not in message.replace("W2 differs", "")


def test_failure_shows_the_weights_of_the_layers_dims_it_names():
    message = he_failure(he_with(lambda d, l: 1.0))
    first_line, *shown = message.splitlines()
    assert first_line.startswith("initialize([3, 2, 1]): W1 differs")  # W2 = randn * 1 = sqrt(2/2) is right
    assert shown[0] == "your W1 for layers_dims = [3, 2, 1]:"
    assert shown[1].split() == ["[[", "1.7886", "0.4365", "0.0965]"]  # the unscaled draws
    assert shown[3] == "expected:" and shown[4].split() == ["[[", "1.4604", "0.3564", "0.0788]"]


def test_a_failure_in_a_kernel_shows_the_message_and_the_students_line_not_the_helpers(tmp_path):
    """Run in a real IPython kernel: the helpers' frames are hidden (``__tracebackhide__``)."""
    shutil.copy(ROOT / "public_tests.py", tmp_path)
    student = ("import numpy as np\n"
               "from public_tests import initialize_parameters_he_test\n"
               "def initialize_parameters_he(layers_dims):\n"
               "    np.random.seed(3)\n"
               "    parameters = {}\n"
               "    for l in range(1, len(layers_dims)):\n"
               "        parameters['W' + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * np.sqrt(1 / layers_dims[l - 1])\n"
               "        parameters['b' + str(l)] = np.zeros((layers_dims[l], 1))\n"
               "    return parameters\n")
    crashing = "def initialize_parameters_zeros(layers_dims):\n    return {'W1': 1 / 0}\n"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(student),
        nbformat.v4.new_code_cell("initialize_parameters_he_test(initialize_parameters_he)"),
        nbformat.v4.new_code_cell(crashing + "from public_tests import initialize_parameters_zeros_test\n"
                                  "initialize_parameters_zeros_test(initialize_parameters_zeros)")])
    nbclient.NotebookClient(nb, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}).execute()
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(nb.cells[i].outputs[0].traceback)) for i in (1, 2)]

    wrong_scale, student_crash = plain
    assert "----> 1 initialize_parameters_he_test(initialize_parameters_he)" in wrong_scale
    assert "values look like Xavier scaling" in wrong_scale
    # IPython always prints the frame that raised (a three-line _fail); every other helper is hidden
    shown_frames = re.findall(r"public_tests\.py:\d+, in (\w+)", wrong_scale)
    assert shown_frames == ["_fail"] and "skipping hidden" in wrong_scale
    # the student's own line is where the error shows, not public_tests.py
    assert "----> 2     return {'W1': 1 / 0}" in student_crash
    assert "public_tests.py" not in student_crash


def test_a_loop_that_stops_early_is_not_called_a_return_inside_the_loop():
    with pytest.raises(AssertionError) as failure:
        initialize_parameters_zeros_test(zeros_off_by_one_loop)
    assert "inside the loop" not in str(failure.value)


def test_he_with_return_inside_the_loop_is_named():
    def he_returns_inside_the_loop(layers_dims):
        np.random.seed(3)
        parameters = {}
        for l in range(1, len(layers_dims)):
            parameters["W" + str(l)] = np.random.randn(layers_dims[l], layers_dims[l - 1]) * np.sqrt(2 / layers_dims[l - 1])
            parameters["b" + str(l)] = np.zeros((layers_dims[l], 1))
            return parameters

    with pytest.raises(AssertionError) as failure:
        initialize_parameters_he_test(he_returns_inside_the_loop)
    assert "only W1 and b1 came back: is `return parameters` inside the loop?" in str(failure.value)
