"""`python -m opcockpit.cli` == `opcockpit`."""

import sys

from opcockpit.cli.main import main

sys.exit(main())
