"""Inside a worker process: one revision's code first on sys.path, torch and fvcore."""
