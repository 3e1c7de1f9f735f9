"""Flowdapt example plugin: one REST call fans out to hundreds of parallel jobs."""
