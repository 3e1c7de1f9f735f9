"""Compatibility import paths for stage code written for the original Flowdapt."""
