"""``python -m kernel_access`` runs the command-line tool."""

import sys

from kernel_access.cli.main import main

sys.exit(main())
