"""The course's feedback filter is coursekit's: ``coursekit.hidden.HideHiddenTests`` (see there
what it hides).  This name stays for courses and hubs whose ``nbgrader_config.py`` lists
``hide_hidden_tests.HideHiddenTests``; nbgrader imports it from the course folder."""

from coursekit.hidden import HideHiddenTests

__all__ = ["HideHiddenTests"]
