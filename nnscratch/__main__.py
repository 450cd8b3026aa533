"""``python -m nnscratch`` runs the command-line interface."""

import sys

from nnscratch.cli import main

sys.exit(main())
