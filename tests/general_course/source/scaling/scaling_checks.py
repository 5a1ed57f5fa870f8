"""Public tests of the scaling assignment (tests/general_course): each checks one function of the
notebook on a small example (plain lists, as the notebook passes them) and says what is wrong and
what to try."""

import numpy as np


def _returned(name, result, shape):
    """Fail with a message unless `result` is an array of `shape`."""
    if result is None:
        raise AssertionError(f"{name} returned None: end the function with `return ...`.")
    result = np.asarray(result)
    if result.shape != shape:
        raise AssertionError(f"{name}(X) has shape {result.shape}, expected {shape}: return one value per entry of X.")
    return result


def center_test(center):
    result = _returned("center", center([[1.0, 10.0], [3.0, 30.0]]), (2, 2))
    if not np.allclose(result, [[-1.0, -10.0], [1.0, 10.0]]):
        raise AssertionError(f"center(X) is {result.tolist()}, expected [[-1, -10], [1, 10]]: subtract from each "
                             "column the mean of that column, X.mean(axis=0).")
    print("center: all tests passed.")


def add_noise_test(add_noise):
    result = _returned("add_noise", add_noise([[1.0, 1.0], [1.0, 1.0]], 1.0), (2, 2))
    expected = [[2.690525703800356, 0.5340626294591673], [1.0328201636785843, 1.4075162829965078]]
    if not np.allclose(result, expected):
        raise AssertionError(f"add_noise(ones, 1.0) is {result.tolist()}, expected {expected}: draw the noise with "
                             "np.random.randn(*X.shape) right after np.random.seed(7), and multiply it by `scale`.")
    print("add_noise: all tests passed.")


def standardize_test(standardize):
    result = _returned("standardize", standardize([[1.0, 5.0], [3.0, 5.0]]), (2, 2))
    if np.isnan(result).any():
        raise AssertionError("standardize(X) has nan where a column is constant (its standard deviation is 0): "
                             "divide such a column by 1 instead.")
    if not np.allclose(result, [[-1.0, 0.0], [1.0, 0.0]]):
        raise AssertionError(f"standardize(X) is {result.tolist()}, expected [[-1, 0], [1, 0]]: subtract each "
                             "column's mean, then divide by its standard deviation X.std(axis=0).")
    print("standardize: all tests passed.")
