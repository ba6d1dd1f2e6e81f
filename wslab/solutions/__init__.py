"""Reference solutions to the lessons' exercises (try first, then peek)."""
