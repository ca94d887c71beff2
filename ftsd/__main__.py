"""`python -m ftsd` -> the ftsd command."""

import sys

from ftsd.cli import main

sys.exit(main())
