"""Benchmarks.  Run each from the repository root as a module, ``python -m bench.<name>``
(`make bench`, `make bench-scale`); they build their throw-away courses and classes with
``scripts.courses`` and ``scripts.make_class`` (which the tests use too: bench/ and tests/ never
import each other, and no benchmark needs pytest or Playwright).  The differential tester is
``scripts.fuzz`` (`make fuzz`)."""
