"""Benchmarks.  Run each from the repository root as a module, ``python -m bench.<name>``
(`make bench`, `make bench-scale`); they build their throw-away courses and classes with
``scripts.courses`` and ``scripts.make_class``, this course's use of ``coursekit.classroom``
(which the tests use too, on their fixture courses: bench/ and tests/ never import each other,
and no benchmark needs pytest or Playwright).  The differential tester is
``scripts.fuzz`` (`make fuzz`)."""
