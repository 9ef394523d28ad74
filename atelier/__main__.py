"""`python -m atelier`: the same as the `atelier` console script."""

import sys

from atelier.cli import main

sys.exit(main())
