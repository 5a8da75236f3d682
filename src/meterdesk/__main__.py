"""`python -m meterdesk` runs the command line (and, with no command, the desktop app)."""

import sys

from meterdesk.cli import main

sys.exit(main())
