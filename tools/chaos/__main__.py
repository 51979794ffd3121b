"""`python -m tools.chaos` is `justtrades chaos`."""

import sys

from tools.chaos.run import main

sys.exit(main(sys.argv[1:]))
