"""Public tests for the three initializers of the weight-initialization lesson.

Each ``*_test(target)`` calls your function on several ``layers_dims`` and
checks what it returns.  It prints ``All tests passed.`` or raises an
``AssertionError`` whose message says what is wrong and what to try.

The expected weights below are literal numbers: the draws of
``np.random.seed(3)`` followed by one ``np.random.randn(n_l, n_{l-1})`` per
layer, in layer order, times the scale of each method.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Initializer = Callable[[list], dict]
Scale = Callable[[int, int], float]  # (n_prev, n_cur) -> standard deviation

# Expected weights for the large-random initializer (randn * 10).
EXPECTED_RANDOM = {
    (3, 2, 1): {
        "W1": [[17.886284734303185, 4.365098505119894, 0.9649746807200863],
               [-18.634927033644907, -2.7738820251439904, -3.5475897926898674]],
        "W2": [[-0.8274148148245977, -6.270006768238473]],
    },
    (2, 4, 1): {
        "W1": [[17.886284734303185, 4.365098505119894],
               [0.9649746807200863, -18.634927033644907],
               [-2.7738820251439904, -3.5475897926898674],
               [-0.8274148148245977, -6.270006768238473]],
        "W2": [[-0.4381816897592824, -4.772180303595027, -13.138647533626822, 8.846223804995846]],
    },
    (4, 3, 2, 1): {
        "W1": [[17.886284734303185, 4.365098505119894, 0.9649746807200863, -18.634927033644907],
               [-2.7738820251439904, -3.5475897926898674, -0.8274148148245977, -6.270006768238473],
               [-0.4381816897592824, -4.772180303595027, -13.138647533626822, 8.846223804995846]],
        "W2": [[8.813180422075298, 17.095730636529485, 0.5003364217686022],
               [-4.046774146008908, -5.453599476195304, -15.464773155829683]],
        "W3": [[9.8236743425816, -11.010676301114756]],
    },
}

# Expected weights for He initialization (randn * sqrt(2 / n_prev)).
EXPECTED_HE = {
    (3, 2, 1): {
        "W1": [[1.4604090331058333, 0.35640880048431217, 0.07878985274897744],
               [-1.521535420880872, -0.22648651894269448, -0.2896594936265377]],
        "W2": [[-0.08274148148245977, -0.6270006768238473]],
    },
    (2, 4, 1): {
        "W1": [[1.7886284734303186, 0.43650985051198943],
               [0.09649746807200862, -1.8634927033644908],
               [-0.27738820251439905, -0.35475897926898675],
               [-0.08274148148245977, -0.6270006768238473]],
        "W2": [[-0.030984124422056857, -0.33744410537169206, -0.9290426766647434, 0.6255224840406426]],
    },
    (4, 3, 2, 1): {
        "W1": [[1.2647513225859208, 0.3086590753517539, 0.06823401404104966, -1.317688327240683],
               [-0.1961430790190789, -0.25085247992791837, -0.05850706264166846, -0.44335643039069744],
               [-0.030984124422056857, -0.33744410537169206, -0.9290426766647434, 0.6255224840406426]],
        "W2": [[0.7195931681723655, 1.3958605613187702, 0.04085229776876763],
               [-0.33041772540029923, -0.4452845326062704, -1.2626934406557815]],
        "W3": [[0.9823674342581601, -1.1010676301114757]],
    },
}

# Shapes only matter for zeros; deeper and wider networks than the examples.
ZEROS_CASES = [(3, 2, 1), (2, 4, 1), (4, 3, 2, 1), (5, 7, 7, 3, 1)]

RTOL, ATOL = 1e-7, 1e-12

# Scalings students commonly use by mistake, with what to say about each.
# Each maps (n_prev, n_cur) to the standard deviation the mistake produces.
SCALE_MISTAKES: list[tuple[str, Scale, str]] = [
    ("he", lambda n_prev, n_cur: math.sqrt(2 / n_prev),
     "values look like He scaling sqrt(2/n); this exercise multiplies np.random.randn(...) by 10"),
    ("xavier", lambda n_prev, n_cur: math.sqrt(1 / n_prev),
     "values look like Xavier scaling sqrt(1/n); He uses sqrt(2/n), with n = layers_dims[l-1]"),
    ("he-divided", lambda n_prev, n_cur: 1 / math.sqrt(2 / n_prev),
     "you divided by sqrt(2/n); He *multiplies* np.random.randn(...) by np.sqrt(2 / layers_dims[l-1])"),
    ("he-current-layer", lambda n_prev, n_cur: math.sqrt(2 / n_cur),
     "you scaled by the size of the current layer; He uses the previous one: np.sqrt(2 / layers_dims[l-1])"),
    ("unscaled", lambda n_prev, n_cur: 1.0,
     "values look like plain np.random.randn(...) without any scaling factor"),
    ("times-ten", lambda n_prev, n_cur: 10.0,
     "values look like np.random.randn(...) * 10, the large-random scaling; He uses np.sqrt(2 / layers_dims[l-1])"),
    ("times-0.01", lambda n_prev, n_cur: 0.01,
     "values look like np.random.randn(...) * 0.01; this exercise asks for the scaling given in its instructions"),
]


def _fail(call: str, message: str) -> None:
    raise AssertionError(f"{call}: {message}")


def _call(target: Initializer, dims: Sequence[int]) -> tuple[str, dict]:
    """Call ``target`` on a fresh list and check that it leaves the list alone."""
    layers_dims = list(dims)
    call = f"{getattr(target, '__name__', 'your function')}({layers_dims})"
    parameters = target(layers_dims)
    if layers_dims != list(dims):
        _fail(call, f"your function changed its input list to {layers_dims}; read layers_dims "
                    "but do not modify it (no append, pop or assignment to its items)")
    return call, parameters


def _check_structure(call: str, parameters: object, dims: Sequence[int]) -> None:
    """Keys, types, shapes and dtypes: everything except the values."""
    if not isinstance(parameters, dict):
        _fail(call, f"returned {type(parameters).__name__}, expected a dict: "
                    "did you forget `return parameters`?")
    n_layers = len(dims) - 1
    expected_keys = {f"{p}{l}" for l in range(1, n_layers + 1) for p in "Wb"}
    keys = set(parameters)
    if keys != expected_keys:
        missing = sorted(expected_keys - keys, key=str)
        extra = sorted(keys - expected_keys, key=str)
        hint = ("loop with `for l in range(1, len(layers_dims))` so that layer l gets "
                "'W' + str(l) and 'b' + str(l)")
        _fail(call, f"expected exactly the keys {sorted(expected_keys)}; "
                    f"missing {missing}, unexpected {extra}: {hint}")

    for l in range(1, n_layers + 1):
        for name, shape in ((f"W{l}", (dims[l], dims[l - 1])), (f"b{l}", (dims[l], 1))):
            value = parameters[name]
            if not isinstance(value, np.ndarray):
                _fail(call, f"{name} is a {type(value).__name__}, expected a NumPy array: "
                            "build it with np.zeros(...) or np.random.randn(...)")
            if value.shape != shape:
                _fail(call, f"{name} has shape {value.shape}, expected {shape}: "
                            + _shape_hint(name, value.shape, shape, dims))
            if not np.issubdtype(value.dtype, np.floating):
                _fail(call, f"{name} has dtype {value.dtype}, expected floating point: "
                            "do not pass dtype=int; np.zeros(shape) gives floats by default")


def _shape_hint(name: str, got: tuple, expected: tuple, dims: Sequence[int]) -> str:
    if name.startswith("b") and len(got) == 1:
        return "a bias is a column vector; give np.zeros a tuple with two numbers: (layers_dims[l], 1)"
    if got == expected[::-1]:
        return "rows and columns are swapped; W[l] has shape (layers_dims[l], layers_dims[l-1])"
    if len(got) == 2 and got[0] == dims[1] and expected[0] != dims[1]:
        return "did you use layers_dims[1] for every layer? Layer l has layers_dims[l] units"
    return ("layer l has shape (layers_dims[l], layers_dims[l-1]) for W and "
            "(layers_dims[l], 1) for b")


def _check_zero_biases(call: str, parameters: dict, n_layers: int) -> None:
    for l in range(1, n_layers + 1):
        if np.any(parameters[f"b{l}"] != 0):
            _fail(call, f"b{l} is not all zeros: biases start at zero, use np.zeros((layers_dims[l], 1))")


def _check_seeded_weights(call: str, parameters: dict, dims: Sequence[int],
                          expected: dict, method: str) -> None:
    """Compare W1..WL with the literal expected values and explain a mismatch."""
    mismatched = [name for name, values in expected.items()
                  if not np.allclose(parameters[name], values, rtol=RTOL, atol=ATOL)]
    if mismatched:
        _fail(call, f"{', '.join(mismatched)} differ from the expected values: "
                    + _diagnose_weights(parameters, dims, expected, method))


def _diagnose_weights(parameters: dict, dims: Sequence[int], expected: dict, method: str) -> str:
    """Guess the mistake by testing each known wrong scaling against every layer."""
    correct = {"random": lambda n_prev, n_cur: 10.0,
               "he": lambda n_prev, n_cur: math.sqrt(2 / n_prev)}[method]
    layers = range(1, len(dims))
    # The standard-normal draws that the expected values were scaled from.
    unit = {l: np.asarray(expected[f"W{l}"]) / correct(dims[l - 1], dims[l]) for l in layers}

    for key, scale, message in SCALE_MISTAKES:
        if key == method:
            continue
        if all(np.allclose(parameters[f"W{l}"], unit[l] * scale(dims[l - 1], dims[l]),
                           rtol=1e-6, atol=ATOL) for l in layers):
            return message

    first_draws = np.concatenate([unit[l].ravel() for l in layers])
    for l in layers:
        got_unit = np.asarray(parameters[f"W{l}"], dtype=float) / correct(dims[l - 1], dims[l])
        if l > 1 and np.allclose(got_unit.ravel(), first_draws[:got_unit.size], rtol=1e-6, atol=ATOL):
            return ("every layer starts from the same random numbers: call np.random.seed(3) once, "
                    "before the loop, not inside it")
    if all(np.all(parameters[f"W{l}"] >= 0) for l in layers):
        return ("all weights are positive: use np.random.randn (normal distribution), "
                "not np.random.rand (uniform on [0, 1))")
    return ("your weights differ from the expected ones: call np.random.seed(3) once at the start "
            "of the function, then draw each layer in order with "
            "np.random.randn(layers_dims[l], layers_dims[l-1]) and nothing else in between")


def _check_repeatable(target: Initializer, dims: Sequence[int], first: dict) -> None:
    call, second = _call(target, dims)
    for name in first:
        if not np.array_equal(first[name], second[name]):
            _fail(call, f"{name} changes from one call to the next: your function must set "
                        "np.random.seed(3) itself, at its start, so every call gives the same weights")


def initialize_parameters_zeros_test(target: Initializer) -> None:
    """Check an ``initialize_parameters_zeros`` implementation."""
    for dims in ZEROS_CASES:
        call, parameters = _call(target, dims)
        _check_structure(call, parameters, dims)
        for name, value in parameters.items():
            if np.any(value != 0):
                _fail(call, f"{name} has non-zero entries: every weight and bias must be 0, "
                            "use np.zeros((rows, columns))")
    print("All tests passed.")


def _seeded_test(target: Initializer, expected_by_dims: dict, method: str) -> None:
    for dims, expected in expected_by_dims.items():
        call, parameters = _call(target, dims)
        _check_structure(call, parameters, dims)
        _check_repeatable(target, dims, parameters)
        _check_zero_biases(call, parameters, len(dims) - 1)
        _check_seeded_weights(call, parameters, dims, expected, method)
    print("All tests passed.")


def initialize_parameters_random_test(target: Initializer) -> None:
    """Check an ``initialize_parameters_random`` implementation (seed 3, weights x 10)."""
    _seeded_test(target, EXPECTED_RANDOM, "random")


def initialize_parameters_he_test(target: Initializer) -> None:
    """Check an ``initialize_parameters_he`` implementation (seed 3, weights x sqrt(2/n_prev))."""
    _seeded_test(target, EXPECTED_HE, "he")
