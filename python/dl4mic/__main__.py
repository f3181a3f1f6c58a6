"""`python -m dl4mic` is the `dl4mic` command (used where no console script is on PATH, e.g. from Fiji)."""

import sys

from .cli import main

sys.exit(main())
