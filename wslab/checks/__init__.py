"""Exercise checks: each runs the learner's code against real connections and says what differs."""
