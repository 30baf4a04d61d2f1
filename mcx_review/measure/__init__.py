"""Counting: resolve configs and analyse models in worker processes, one revision each."""
