"""Exercise checks: each runs the learner's code against real connections and says what differs.

One module per lesson, which the lesson imports its checks from
(``from wslab.checks.lesson02 import check_resuming_room``), and one module for what every
check shares (``report.py``: the report and its verdict, hint tables, and the helpers that
run the learner's code so that a mistake reads as a line of the report, not a traceback).
"""

__all__ = ["lesson01", "lesson02", "lesson03", "lesson04", "lesson05", "lesson06", "lesson07", "lesson08"]
