"""Refuse a plugin name that cannot become a Python package name."""

import keyword
import sys

name = r"""{{ cookiecutter.plugin_name }}"""
slug = "{{ cookiecutter.__slug }}"

if not slug or not slug.isascii() or not slug.isidentifier() or keyword.iskeyword(slug):
    print(
        f"error: plugin name {name!r} must give a Python identifier (ASCII letters, digits, '_', "
        f"'-' or spaces, not starting with a digit); it gives {slug!r}",
        file=sys.stderr,
    )
    sys.exit(1)
