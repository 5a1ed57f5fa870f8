"""The course's command-line tools, and what the tests and the benchmarks share (course folders:
``courses``; generated classes: ``make_class``, ``fuzz``).  Run each from the repository root as a
module, ``python -m scripts.<name>`` (the Makefile's targets do), so that ``scripts``, ``coursekit``
and the course's helper modules import normally, with no ``sys.path`` edits."""
