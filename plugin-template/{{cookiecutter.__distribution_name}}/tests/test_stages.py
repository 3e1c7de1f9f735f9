"""Stage functions are plain Python: test them directly where they need no run context."""

import pytest

from {{ cookiecutter.__package_name }}.stages import make_numbers, summarize


def test_make_numbers_counts_from_zero():
    assert make_numbers(4) == [0, 1, 2, 3]


def test_make_numbers_rejects_negative_counts():
    with pytest.raises(ValueError, match="count must be >= 0"):
        make_numbers(-1)


def test_summarize():
    assert summarize([1.0, 2.0, 3.0]) == {"count": 3, "total": 6.0, "mean": 2.0}
    assert summarize([]) == {"count": 0, "total": 0.0, "mean": 0.0}
