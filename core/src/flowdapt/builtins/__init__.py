"""The original's ``flowdapt.builtins``: pandas helpers for stage code (:mod:`.utils`)."""
