"""Public tests for the three initializers of the weight-initialization lesson.

Each ``*_test(target)`` calls your function on several ``layers_dims`` and
checks what it returns.  It prints ``All tests passed.`` or raises an
``AssertionError`` whose message says what is wrong and what to try.

The expected weights below are literal numbers: the draws of
``np.random.seed(3)`` followed by one ``np.random.randn(n_l, n_{l-1})`` per
layer, in layer order, times the scale of each method.
"""

from __future__ import annotations

import gettext
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# --- the language of the messages --------------------------------------------------------------
# Messages (this file's and init_utils.py's words) are English in the code and translated through
# gettext catalogues compiled into locale/<language>/LC_MESSAGES/course.mo beside it (the .po
# sources live in the course's locale/).
# The language is, in order: the ``language`` argument of a test, the COURSE_LANGUAGE environment
# variable, the default of this copy of the course (the one word in locale/LANGUAGE, written by the
# build for each translated assignment), else English.  A language without a catalogue falls back
# to English.
LANGUAGE_VARIABLE = "COURSE_LANGUAGE"
LOCALE = Path(__file__).resolve().parent / "locale"
DOMAIN = "course"
_messages: gettext.NullTranslations = gettext.NullTranslations()


def language_of_this_copy() -> str:
    """The language the messages use when neither an argument nor COURSE_LANGUAGE says otherwise."""
    try:
        return (LOCALE / "LANGUAGE").read_text(encoding="utf-8").strip() or "en"
    except OSError:
        return "en"


def use_language(language: str | None = None) -> str:
    """Switch the messages to ``language`` (e.g. "tr", "pt_BR", "zh_CN"; "pt-BR" works too); return it."""
    global _messages
    chosen = (language or os.environ.get(LANGUAGE_VARIABLE) or language_of_this_copy()).replace("-", "_")
    _messages = gettext.translation(DOMAIN, localedir=LOCALE, languages=[chosen], fallback=True)
    return chosen


def _(message: str) -> str:
    return _messages.gettext(message)


def N_(message: str) -> str:
    """Marks a message for the catalogue; it is translated where it is used."""
    return message


use_language()  # this copy's default, for init_utils' words before any test has run


Initializer = Callable[[list], dict]
Scale = Callable[[Sequence[int], int], float]  # (layers_dims, l) -> factor of layer l

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

# np.random.seed(3); np.random.rand(20): the uniform draws on [0, 1) that np.random.rand and
# np.random.uniform give after the seed.  Only used to recognise uniform weights and say so.
UNIFORM_DRAWS = [
    0.5507979025745755, 0.7081478226181048, 0.2909047389129443, 0.510827605197663,
    0.8929469543476547, 0.8962930889334381, 0.12558531046383625, 0.20724287813818676,
    0.05146720330082988, 0.44080984365063647, 0.029876210878566956, 0.4568332243947111,
    0.6491440476147607, 0.2784872826479753, 0.6762549019801313, 0.5908628174163508,
    0.023981882377165364, 0.558854087990882, 0.2592524469074654, 0.41510119701006964,
]

# Scalings students commonly use by mistake, with what to say about each.  Each maps
# (layers_dims, l) to the factor the mistake multiplies layer l's np.random.randn(...) by; the
# messages are marked with N_ for the catalogue and translated when they are used.
SCALE_MISTAKES: list[tuple[str, Scale, str]] = [
    ("he", lambda d, l: math.sqrt(2 / d[l - 1]),
     N_("values look like He scaling sqrt(2/n); this exercise multiplies np.random.randn(...) by 10")),
    ("xavier", lambda d, l: math.sqrt(1 / d[l - 1]),
     N_("values look like Xavier scaling sqrt(1/n); He uses sqrt(2/n), with n = layers_dims[l-1]")),
    ("glorot", lambda d, l: math.sqrt(2 / (d[l - 1] + d[l])),
     N_("values look like Glorot scaling sqrt(2/(n_in + n_out)); He uses only the layer's inputs: "
        "np.sqrt(2 / layers_dims[l-1])")),
    ("variance", lambda d, l: 2 / d[l - 1],
     N_("you multiplied by the variance 2/n; np.random.randn(...) has standard deviation 1, so multiply "
        "it by the standard deviation, np.sqrt(2 / layers_dims[l-1])")),
    ("integer-division", lambda d, l: math.sqrt(2 // d[l - 1]),
     N_("2 // n is integer division (2 // 3 is 0); write 2 / layers_dims[l-1]")),
    ("root-of-two-over-n", lambda d, l: math.sqrt(2) / d[l - 1],
     N_("np.sqrt(2) / n takes the square root of 2 only; He takes the root of the whole fraction: "
        "np.sqrt(2 / layers_dims[l-1])")),
    ("input-size-everywhere", lambda d, l: math.sqrt(2 / d[0]),
     N_("every layer is scaled by layers_dims[0]; layer l must use the size of the layer before it, "
        "np.sqrt(2 / layers_dims[l-1])")),
    ("he-divided", lambda d, l: 1 / math.sqrt(2 / d[l - 1]),
     N_("you divided by sqrt(2/n); He *multiplies* np.random.randn(...) by np.sqrt(2 / layers_dims[l-1])")),
    ("he-current-layer", lambda d, l: math.sqrt(2 / d[l]),
     N_("you scaled by the size of the current layer; He uses the previous one: np.sqrt(2 / layers_dims[l-1])")),
    ("unscaled", lambda d, l: 1.0,
     N_("values look like plain np.random.randn(...) without any scaling factor")),
    ("times-ten", lambda d, l: 10.0,
     N_("values look like np.random.randn(...) * 10, the large-random scaling; He uses np.sqrt(2 / layers_dims[l-1])")),
    ("times-0.01", lambda d, l: 0.01,
     N_("values look like np.random.randn(...) * 0.01; this exercise asks for the scaling given in its instructions")),
]


def _fail(call: str, message: str) -> None:
    __tracebackhide__ = True  # pytest hides this frame; IPython prints it, being the one that raises
    raise AssertionError(f"{call}: {message}")


def _call(target: Initializer, dims: Sequence[int]) -> tuple[str, dict]:
    """Call ``target`` on a fresh list and check that it leaves the list alone."""
    __tracebackhide__ = True
    layers_dims = list(dims)
    name = getattr(target, "__name__", None) or _("your function")
    call = f"{name}({layers_dims})"
    parameters = target(layers_dims)
    if layers_dims != list(dims):
        _fail(call, _("your function changed its input list to {layers_dims}; read layers_dims "
                      "but do not modify it (no append, pop or assignment to its items)").format(layers_dims=layers_dims))
    return call, parameters


def _returns_first_layer_only(target: Initializer) -> bool:
    """Whether ``target`` gives only layer 1 for a 4-layer network too: a `return` inside the loop.

    A loop that stops one layer early also gives only layer 1 for a 2-layer network, but three
    layers for this one.
    """
    try:
        return set(target([4, 3, 3, 3, 1])) == {"W1", "b1"}
    except Exception:  # the student's code fails on other sizes: the checks that follow will say why
        return False


def _check_structure(call: str, parameters: object, dims: Sequence[int], target: Initializer | None = None) -> None:
    """Keys, types, shapes and dtypes: everything except the values."""
    __tracebackhide__ = True
    if not isinstance(parameters, dict):
        _fail(call, _("returned {type}, expected a dict: did you forget `return parameters`?")
              .format(type=type(parameters).__name__))
    n_layers = len(dims) - 1
    expected_keys = {f"{p}{l}" for l in range(1, n_layers + 1) for p in "Wb"}
    keys = set(parameters)
    if keys == {"W1", "b1"} and n_layers > 1 and target is not None and _returns_first_layer_only(target):
        _fail(call, _("only W1 and b1 came back: is `return parameters` inside the loop? Indented under `for`, it "
                      "returns after the first layer. Move it out, level with `for`, so that it runs after the loop "
                      "has filled every layer"))
    if keys != expected_keys:
        _fail(call, _("expected exactly the keys {expected}; missing {missing}, unexpected {extra}: loop with "
                      "`for l in range(1, len(layers_dims))` so that layer l gets 'W' + str(l) and 'b' + str(l)")
              .format(expected=sorted(expected_keys), missing=sorted(expected_keys - keys, key=str),
                      extra=sorted(keys - expected_keys, key=str)))

    for l in range(1, n_layers + 1):
        for name, shape in ((f"W{l}", (dims[l], dims[l - 1])), (f"b{l}", (dims[l], 1))):
            value = parameters[name]
            if not isinstance(value, np.ndarray):
                _fail(call, _("{name} is a {type}, expected a NumPy array: "
                              "build it with np.zeros(...) or np.random.randn(...)")
                      .format(name=name, type=type(value).__name__))
            if value.shape != shape:
                _fail(call, _("{name} has shape {shape}, expected {expected}: {hint}")
                      .format(name=name, shape=value.shape, expected=shape,
                              hint=_shape_hint(name, value.shape, shape, dims)))
            if not np.issubdtype(value.dtype, np.floating):
                _fail(call, _("{name} has dtype {dtype}, expected floating point: "
                              "do not pass dtype=int; np.zeros(shape) gives floats by default")
                      .format(name=name, dtype=value.dtype))


def _shape_hint(name: str, got: tuple, expected: tuple, dims: Sequence[int]) -> str:
    if name.startswith("b") and len(got) == 1:
        return _("a bias is a column vector; give np.zeros a tuple with two numbers: (layers_dims[l], 1)")
    if got == expected[::-1]:
        return _("rows and columns are swapped; W[l] has shape (layers_dims[l], layers_dims[l-1])")
    if len(got) == 2 and got[0] == dims[1] and expected[0] != dims[1]:
        return _("did you use layers_dims[1] for every layer? Layer l has layers_dims[l] units")
    return _("layer l has shape (layers_dims[l], layers_dims[l-1]) for W and (layers_dims[l], 1) for b")


def _check_zero_biases(call: str, parameters: dict, n_layers: int) -> None:
    __tracebackhide__ = True
    for l in range(1, n_layers + 1):
        if np.any(parameters[f"b{l}"] != 0):
            _fail(call, _("{name} is not all zeros: biases start at zero, use np.zeros((layers_dims[l], 1))")
                  .format(name=f"b{l}"))


def _names(names: list[str]) -> str:
    """'W1', 'W1 and W2', 'W1, W2 and W3'."""
    return names[0] if len(names) == 1 else _("{first} and {last}").format(first=", ".join(names[:-1]), last=names[-1])


def _check_seeded_weights(call: str, parameters: dict, dims: Sequence[int],
                          expected: dict, method: str) -> None:
    """Compare W1..WL with the literal expected values and explain a mismatch.

    The message names the mismatched matrices, says what went wrong, then shows the first of them
    as returned and as expected for this same layers_dims, so the student compares like with like.
    """
    __tracebackhide__ = True
    mismatched = [name for name, values in expected.items()
                  if not np.allclose(parameters[name], values, rtol=RTOL, atol=ATOL)]
    if mismatched:
        first = mismatched[0]
        with np.printoptions(precision=4, suppress=True, floatmode="maxprec"):
            shown = _("your {name} for layers_dims = {layers_dims}:\n{got}\nexpected:\n{expected}").format(
                name=first, layers_dims=list(dims), got=np.asarray(parameters[first]),
                expected=np.asarray(expected[first]))
        differ = (_("{name} differs from the expected values") if len(mismatched) == 1
                  else _("{name} differ from the expected values"))
        _fail(call, differ.format(name=_names(mismatched)) + ": "
                    + _diagnose_weights(parameters, dims, expected, method) + "\n" + shown)


def _expected_factor(method: str, n_prev: int) -> tuple[float, str]:
    """What the exercise multiplies np.random.randn(...) by, and how a message says it ({value})."""
    if method == "he":
        return math.sqrt(2 / n_prev), _("He expects sqrt(2/{n}) = {value}").replace("{n}", str(n_prev))
    return 10.0, _("this exercise expects ×{value}")


def _number(value: float, other: float) -> str:
    """``value`` with the fewest significant digits (at least 2) that tell it from ``other``."""
    for digits in range(2, 9):
        text = f"{value:.{digits}g}"
        if text != f"{other:.{digits}g}":
            return text
    return text


def _factor(got: np.ndarray, unit: np.ndarray) -> float | None:
    """c if ``got`` is ``c * unit`` (the right draws times one constant), else None."""
    got = np.asarray(got, dtype=float).ravel()
    unit = np.asarray(unit, dtype=float).ravel()
    with np.errstate(all="ignore"):
        c = float(got @ unit / (unit @ unit))
        return c if np.allclose(got, c * unit, rtol=1e-6, atol=ATOL) else None


def _uniform_range(got: np.ndarray, uniform: np.ndarray) -> tuple[float, float] | None:
    """(low, high) if ``got`` is ``low + (high - low) * uniform``, else None."""
    got = np.asarray(got, dtype=float).ravel()
    if got.size < 2 or not np.all(np.isfinite(got)):
        return None
    slope, low = np.polyfit(uniform, got, 1)
    if slope > 0 and np.allclose(got, low + slope * uniform, rtol=1e-6, atol=ATOL):
        return float(low), float(low + slope)
    return None


def _wrong_factors(dims: Sequence[int], factors: dict[int, float], method: str) -> str:
    """'layer 1 uses ×0.58, He expects sqrt(2/3) = 0.82', for every layer with a wrong factor."""
    parts = []
    for l, used in factors.items():
        expected, says = _expected_factor(method, dims[l - 1])
        if not math.isclose(used, expected, rel_tol=1e-6):
            parts.append(_("layer {l} uses ×{used}, {expected}").format(
                l=l, used=_number(used, expected), expected=says.format(value=_number(expected, used))))
    return "; ".join(parts)


def _named_mistake(dims: Sequence[int], factors: dict[int, float], method: str) -> str | None:
    """The one known mistake whose factors match every layer, if exactly one does."""
    matches = [message for key, scale, message in SCALE_MISTAKES
               if key != method and all(math.isclose(factors[l], scale(dims, l), rel_tol=1e-6, abs_tol=1e-12)
                                        for l in factors)]
    return _(matches[0]) if len(matches) == 1 else None


def _diagnose_weights(parameters: dict, dims: Sequence[int], expected: dict, method: str) -> str:
    """Guess the mistake: right draws with wrong factors, the seed inside the loop, uniform draws."""
    __tracebackhide__ = True
    layers = range(1, len(dims))
    # The standard-normal draws that the expected values were scaled from.
    unit = {l: np.asarray(expected[f"W{l}"]) / _expected_factor(method, dims[l - 1])[0] for l in layers}
    first_draws = np.concatenate([unit[l].ravel() for l in layers])

    factors = {l: _factor(parameters[f"W{l}"], unit[l]) for l in layers}
    wrong = _wrong_factors(dims, factors, method) if None not in factors.values() else ""
    if wrong:
        named = _named_mistake(dims, factors, method)
        if named:
            return _("{mistake}. Your random numbers are right, only the scale is wrong: {factors}").format(
                mistake=named, factors=wrong)
        return _("your random numbers are right, only the scale is wrong: {factors}").format(factors=wrong)

    # Seed set inside the loop: every layer restarts from the first draws, maybe scaled wrongly too.
    restarted = {l: _factor(parameters[f"W{l}"], first_draws[:unit[l].size]) for l in layers}
    if len(dims) > 2 and None not in restarted.values():
        too = "; ".join(part for part in (_named_mistake(dims, restarted, method),
                                          _wrong_factors(dims, restarted, method)) if part)
        seed = _("every layer starts from the same random numbers: call np.random.seed(3) once, "
                 "before the loop, not inside it")
        return _("{mistake}. The scale is wrong too: {details}").format(mistake=seed, details=too) if too else seed

    uniform = np.asarray(UNIFORM_DRAWS)
    offsets = np.cumsum([0] + [unit[l].size for l in layers])
    ranges = {l: _uniform_range(parameters[f"W{l}"], uniform[offsets[l - 1]:offsets[l]]) for l in layers}
    if all(r is not None for r in ranges.values()):
        low, high = ranges[1]
        kaiming = all(math.isclose(high, math.sqrt(6 / dims[l - 1]), rel_tol=1e-6)
                      and math.isclose(low, -high, rel_tol=1e-6) for l, (low, high) in ranges.items())
        factor = "np.sqrt(2 / layers_dims[l-1])" if method == "he" else "10"
        message = (_("your weights are uniform on [{low}, {high}] in layer 1, Kaiming-uniform (He's rule for "
                     "uniform draws, limit sqrt(6/n)): this exercise draws normal numbers with np.random.randn, "
                     "not np.random.rand or np.random.uniform, then multiplies them by {factor}") if kaiming else
                   _("your weights are uniform on [{low}, {high}] in layer 1: this exercise draws normal numbers "
                     "with np.random.randn, not np.random.rand or np.random.uniform, then multiplies them by {factor}"))
        return message.format(low=f"{low:.2g}", high=f"{high:.2g}", factor=factor)

    if all(np.all(parameters[f"W{l}"] >= 0) for l in layers):
        return _("all weights are positive: use np.random.randn (normal distribution), "
                 "not np.random.rand (uniform on [0, 1))")
    return _("your weights differ from the expected ones: call np.random.seed(3) once at the start "
             "of the function, then draw each layer in order with "
             "np.random.randn(layers_dims[l], layers_dims[l-1]) and nothing else in between")


def _check_repeatable(target: Initializer, dims: Sequence[int], first: dict) -> None:
    __tracebackhide__ = True
    call, second = _call(target, dims)
    for name in first:
        if not np.array_equal(first[name], second[name]):
            _fail(call, _("{name} changes from one call to the next: your function must set "
                          "np.random.seed(3) itself, at its start, so every call gives the same weights")
                  .format(name=name))


def initialize_parameters_zeros_test(target: Initializer, language: str | None = None) -> None:
    """Check an ``initialize_parameters_zeros`` implementation; ``language`` as in :func:`use_language`."""
    __tracebackhide__ = True
    use_language(language)
    for dims in ZEROS_CASES:
        call, parameters = _call(target, dims)
        _check_structure(call, parameters, dims, target)
        for name, value in parameters.items():
            if np.any(value != 0):
                _fail(call, _("{name} has non-zero entries: every weight and bias must be 0, "
                              "use np.zeros((rows, columns))").format(name=name))
    print(_("All tests passed."))


def _seeded_test(target: Initializer, expected_by_dims: dict, method: str, language: str | None) -> None:
    __tracebackhide__ = True
    use_language(language)
    for dims, expected in expected_by_dims.items():
        call, parameters = _call(target, dims)
        _check_structure(call, parameters, dims, target)
        _check_repeatable(target, dims, parameters)
        _check_zero_biases(call, parameters, len(dims) - 1)
        _check_seeded_weights(call, parameters, dims, expected, method)
    print(_("All tests passed."))


def initialize_parameters_random_test(target: Initializer, language: str | None = None) -> None:
    """Check an ``initialize_parameters_random`` implementation (seed 3, weights x 10)."""
    __tracebackhide__ = True
    _seeded_test(target, EXPECTED_RANDOM, "random", language)


def initialize_parameters_he_test(target: Initializer, language: str | None = None) -> None:
    """Check an ``initialize_parameters_he`` implementation (seed 3, weights x sqrt(2/n_prev))."""
    __tracebackhide__ = True
    _seeded_test(target, EXPECTED_HE, "he", language)
