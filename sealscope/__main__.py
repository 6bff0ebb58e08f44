import sys

from sealscope.cli import main

sys.exit(main())
