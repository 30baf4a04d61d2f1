"""The report: typed JSON contract, comparison, budgets, merge, validation. Pure."""
