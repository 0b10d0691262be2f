import sys

from leadscore.cli.commands import main

sys.exit(main())
