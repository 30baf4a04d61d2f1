"""``python -m mcx_review.report_validate`` (used by the published comment action): see report/validate.py."""
import sys

from mcx_review.report.validate import main

if __name__ == "__main__":
    sys.exit(main())
