"""``python -m wslab``: servers, clients, broker services and benchmarks from a terminal
(:mod:`.main`), the terminal chat client (:mod:`.terminal`), and argument types the
benchmarks share (:mod:`.argtypes`)."""
