"""The API's routers, mounted at the root paths of the original API."""
