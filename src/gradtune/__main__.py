import sys

from gradtune.cli.main import main

sys.exit(main())
