"""public_tests.py must pass every correct initializer and fail every wrong one with a useful hint.

The wrong initializers below are the mistakes students really make; each must raise an
AssertionError whose message names the mistake.  The correct ones are written in different
styles (loops, comprehensions, keyword arguments, np.random.normal) and must all pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from public_tests import (initialize_parameters_he_test, initialize_parameters_random_test,
                          initialize_parameters_zeros_test)


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
    import public_tests
    tree = ast.parse(open(public_tests.__file__, encoding="utf-8").read())
    random_calls = [ast.unparse(node.func) for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and "random" in ast.unparse(node.func)]
    assert random_calls == []
