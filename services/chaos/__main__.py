"""`python -m services.chaos` is `justtrades chaos`."""

import sys

from services.chaos.run import main

sys.exit(main(sys.argv[1:]))
