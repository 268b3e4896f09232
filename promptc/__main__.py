import sys

from promptc.cli import main

sys.exit(main())
