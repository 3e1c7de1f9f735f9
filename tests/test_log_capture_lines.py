"""The capture's per-write fast paths (``_Stream.write`` for print()'s pieces, ``_Handler.handle``
for a record without arguments) give exactly the records the general path gives: the same lines,
cut at the same points, with the same fields, bounds and drop markers."""

from __future__ import annotations

import io
import logging
import random

import pytest

from flowdapt.engine.logs import (
    LOG,
    STDERR,
    STDERR_LEVEL,
    STDOUT,
    STDOUT_LEVEL,
    SYSTEM,
    Capture,
    CaptureOptions,
    _Stream,
    start_capture,
    stop_capture,
)

PIECES = ["", "\n", "a", "bc", " ", "line\n", "\n\n", "x" * 7, "y" * 13, "end\nstart", "über", "\udcff", "12"]


def pieces(seed: int, count: int = 400) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    return [(rng.randrange(2), rng.choice(PIECES)) for _ in range(count)]


def without_time(records: list[tuple]) -> list[tuple]:
    return [record[1:] for record in records]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("max_line", [5, 16, 1000])
def test_stream_writes_give_the_records_capture_write_gives(seed, max_line):
    options = CaptureOptions(max_bytes=10_000, max_line=max_line)
    reference = Capture(options)
    reference.item = 7
    for index, text in pieces(seed):
        reference.write(index, text)
    expected = reference.finish()

    streams = [_Stream(0, io.StringIO()), _Stream(1, io.StringIO())]
    capture, token = start_capture(options)
    capture.item = 7
    try:
        for index, text in pieces(seed):
            assert streams[index].write(text) == len(text)
    finally:
        got = stop_capture(capture, token)
    assert without_time(got) == without_time(expected)
    lines = [record[5] for record in got if record[2] != SYSTEM]
    assert all(len(line) <= max_line + 40 for line in lines)  # a cut line ends with its note
    assert len(lines) > 50
    assert streams[0]._target.getvalue() == "" and streams[1]._target.getvalue() == ""


def test_print_pieces_make_one_record_per_line_with_stream_and_level():
    streams = [_Stream(0, io.StringIO()), _Stream(1, io.StringIO())]
    capture, token = start_capture(CaptureOptions())
    capture.item = 3
    try:
        print("item", 1, file=streams[0])
        print("warn", file=streams[1])
        print(file=streams[0])
        print("no end", end="", file=streams[0])
    finally:
        records = stop_capture(capture, token)
    assert without_time(records) == [
        (STDOUT_LEVEL, STDOUT, "", 3, "item 1"),
        (STDERR_LEVEL, STDERR, "", 3, "warn"),
        (STDOUT_LEVEL, STDOUT, "", 3, ""),
        (STDOUT_LEVEL, STDOUT, "", 3, "no end"),
    ]
    assert all(isinstance(record[0], float) for record in records)


def test_a_line_over_max_line_built_from_pieces_is_cut_as_before():
    streams = [_Stream(0, io.StringIO()), None]
    capture, token = start_capture(CaptureOptions(max_line=10))
    try:
        for _ in range(4):
            streams[0].write("abcd")  # 16 > 10 after the third piece: that line is ended, cut
        streams[0].write("\n")
    finally:
        records = stop_capture(capture, token)
    assert [record[5] for record in records] == ["abcdabcdab [... 2 more characters cut]", "abcd"]


def test_past_the_bound_the_oldest_print_lines_are_dropped_with_a_marker():
    stream = _Stream(0, io.StringIO())
    capture, token = start_capture(CaptureOptions(max_bytes=1000))
    try:
        for i in range(100):
            print("line", i, file=stream)
    finally:
        records = stop_capture(capture, token)
    assert records[0][2] == SYSTEM and "were dropped" in records[0][5]
    assert records[-1][5] == "line 99"
    kept = records[1:]
    assert sum(len(r[5]) + 64 for r in kept) <= 1000
    dropped = int(records[0][5].split()[0])
    assert dropped + len(kept) == 100


def test_a_record_without_arguments_and_one_with_them_are_captured_alike(caplog):
    logger = logging.getLogger("flowdapt.test.fastpath")
    capture, token = start_capture(CaptureOptions(level=logging.INFO))
    capture.item = 1
    try:
        logger.info("plain %s")  # no args: the message as given, %s and all
        logger.warning("with %s and %d", "text", 5)
        logger.debug("below the level")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        records = stop_capture(capture, token)
    assert [(r[1], r[2], r[3], r[4]) for r in records] == [
        (logging.INFO, LOG, "flowdapt.test.fastpath", 1),
        (logging.WARNING, LOG, "flowdapt.test.fastpath", 1),
        (logging.ERROR, LOG, "flowdapt.test.fastpath", 1),
    ]
    assert records[0][5] == "plain %s"
    assert records[1][5] == "with text and 5"
    assert records[2][5].startswith("failed\nTraceback") and records[2][5].endswith("ValueError: boom")
    # The process's own handlers still get the records (pytest's here).
    assert "with text and 5" in caplog.text
