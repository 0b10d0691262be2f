"""`python -m leadscore.cli`: the `leadscore` command without its console script."""

import sys

from leadscore.cli.commands import main

sys.exit(main())
