#!/usr/bin/env python3
"""The DR plan's test script: ``python test_disaster_recovery.py --simulate``.

The same as ``autograph dr drill``: by default a sandbox stack of its own; ``--live
--i-understand-this-destroys-data`` drills the configured stack. ``--help`` lists the options.
"""

import sys
from pathlib import Path

try:
    import autograph  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from autograph.cli.dr import drill_main

if __name__ == "__main__":
    sys.exit(drill_main(sys.argv[1:]))
