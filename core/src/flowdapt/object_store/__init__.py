"""Object store: put/get objects shared between stages and runs (cluster memory, artifacts)."""
