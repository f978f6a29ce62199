"""``python -m nasntk`` runs the CLI."""

import sys

from nasntk.cli.main import main

sys.exit(main())
