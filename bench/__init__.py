"""Benchmarks and the differential tester.  Run each from the repository root as a module,
``python -m bench.<name>`` (`make bench`, `make bench-scale`, `make fuzz`); they build their
throw-away courses with the tests' helpers (``tests.helpers``) and the answers in ``scripts.student_work``."""
