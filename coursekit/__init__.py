"""coursekit: a fast, sandboxed drop-in for `nbgrader autograde`."""
