"""``python -m wslab.bench BENCHMARK ROLE ...``: the child processes a benchmark starts (internal)."""

import sys

from . import fanout, join, pollpush, scale

CHILDREN = {
    "fanout": fanout.child_main,
    "scale": scale.child_main,
    "poll-vs-push": pollpush.child_main,
    "join": join.child_main,
}

if len(sys.argv) < 2 or sys.argv[1] not in CHILDREN:
    sys.exit(f"internal: python -m wslab.bench {{{','.join(CHILDREN)}}} ROLE ...; use python -m wslab bench")
sys.exit(CHILDREN[sys.argv[1]](sys.argv[2:]))
