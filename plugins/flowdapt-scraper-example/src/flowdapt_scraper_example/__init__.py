"""Flowdapt example plugin: a news scraper into a vector database."""
