import sys

from mcx_review.cli.app import main

sys.exit(main())
