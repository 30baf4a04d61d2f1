"""Command line: one module per subcommand; ``app`` parses and dispatches (``mcx_review.cli:main``)."""
from mcx_review.cli.app import main

__all__ = ["main"]
