"""The worker's published module path (``python -m mcx_review.worker``): see measure/worker/main.py."""
import sys

from mcx_review.measure.worker.main import main

if __name__ == "__main__":
    sys.exit(main())
