"""The course's command-line tools, and what the lesson's tests and the benchmarks share (this
course's folders: ``courses``; its generated classes: ``make_class``, ``fuzz``; the pieces are
``coursekit.classroom``'s).  Run each from the repository root as a
module, ``python -m scripts.<name>`` (the Makefile's targets do), so that ``scripts``, ``coursekit``
and the course's helper modules import normally, with no ``sys.path`` edits."""
