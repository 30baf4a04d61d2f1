"""GitHub: the Actions environment and the sticky PR comment."""
