"""Reference solutions to the lessons' exercises, one module per lesson (try first, then peek).

A lesson imports its module (``from wslab.solutions import lesson02``) to show that the
reference passes the same check the learner's answer went through.
"""

__all__ = ["lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06", "lesson07", "lesson08"]
