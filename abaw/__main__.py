import sys

from abaw.cli import main

sys.exit(main())
