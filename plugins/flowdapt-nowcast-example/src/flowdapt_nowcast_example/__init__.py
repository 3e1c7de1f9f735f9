"""Flowdapt example plugin."""
