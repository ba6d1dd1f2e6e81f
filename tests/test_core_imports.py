"""``import wslab`` is cheap: its names load their modules on first use.

(What the I/O-free core may import is ``test_layers``, which walks the whole ``core`` package.)
"""

from __future__ import annotations

import subprocess
import sys


def test_import_wslab_is_cheap_and_its_names_load_on_first_use() -> None:
    probe = (
        "import sys, wslab\n"
        "before = 'wslab.runtime.handles' in sys.modules\n"
        "wslab.EventLog, wslab.serve\n"
        "print(before, 'wslab.runtime.handles' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]
