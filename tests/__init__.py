"""The tests are a package, so pytest (prepend import mode, rootdir = the repository) puts the
repository root first on ``sys.path``: tests import ``coursekit``, ``scripts.*``, ``bench.*`` and the
course's own modules (``init_utils``, ``public_tests``) normally.  What tests share lives in
``tests.helpers``; fixtures live in ``tests/conftest.py``; no test module imports another."""

import pytest

# The helpers' assertions explain themselves like the tests' own (pytest rewrites only test modules
# and conftest.py unless told).
pytest.register_assert_rewrite("tests.helpers")
