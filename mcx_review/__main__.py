import sys

from mcx_review.cli import main

sys.exit(main())
