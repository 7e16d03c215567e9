"""Resumable job outputs (`rlkd_lite.data.resumable`) and the JSONL helpers under them: paths
that cannot be written are refused up front, earlier rejects are skipped or redone, and a bad
line's JSON error reads cleanly."""
from __future__ import annotations

import json
import os
import re

import pytest

from rlkd_lite.data.jsonl import append_jsonl, read_jsonl
from rlkd_lite.data.resumable import REQUEST_FAILED, ResumableOutput
from rlkd_lite.errors import InputError, RlkdError


@pytest.mark.parametrize("line", [
    '{"a": "x\ty"}',    # Invalid control character at
    '{"a": "xy',        # Unterminated string starting at
    '{"a" 1}',          # Expecting ':' delimiter
    '{"a": 1}}',        # Extra data
    '{a: 1}',           # Expecting property name enclosed in double quotes
    '{"a": "\\q"}',     # Invalid \escape
    '{"a": "\\u12"}',   # Invalid \uXXXX escape
])
def test_a_json_error_names_its_column_without_a_doubled_word(tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(InputError) as error:
        list(read_jsonl(path))
    message = str(error.value)
    assert re.search(r"not valid JSON: .+ at column \d+$", message), message
    assert not re.search(r"\b(\w+) \1\b", message), message


def test_a_control_character_error_reads_cleanly(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a\tb"}\n')
    with pytest.raises(InputError, match="Invalid control character at column 16$"):
        list(read_jsonl(path))


def unwritable_outputs(tmp_path):
    """(output, rejects) pairs of which one cannot be written, and the path to be named."""
    folder = tmp_path / "adir"
    folder.mkdir()
    a_file = tmp_path / "afile"
    a_file.write_text("mine\n")
    return [
        ((folder, None), folder),
        ((a_file / "out.jsonl", None), a_file / "out.jsonl"),
        ((a_file / "deeper" / "out.jsonl", None), a_file / "deeper" / "out.jsonl"),
        ((tmp_path / "out.jsonl", folder), folder),
        ((tmp_path / "new" / "out.jsonl", a_file / "rejects.jsonl"), a_file / "rejects.jsonl"),
    ]


def test_an_output_that_cannot_be_written_is_refused_before_anything_is_made(tmp_path):
    for (output, rejects), named in unwritable_outputs(tmp_path):
        before = sorted(tmp_path.rglob("*"))
        with pytest.raises(InputError) as error:
            ResumableOutput(output, rejects)
        assert error.value.path == str(named), error.value
        assert sorted(tmp_path.rglob("*")) == before  # no folder or file made
    assert (tmp_path / "afile").read_text() == "mine\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="no permission to write in"):
            ResumableOutput(locked / "out.jsonl")
    finally:
        locked.chmod(0o755)


def test_the_output_and_its_rejects_file_must_differ(tmp_path):
    with pytest.raises(InputError, match="must differ"):
        ResumableOutput(tmp_path / "out.jsonl", tmp_path / "out.jsonl")


def test_append_jsonl_reports_a_write_failure_without_a_traceback(tmp_path):
    with pytest.raises(RlkdError, match=f"cannot write {re.escape(str(tmp_path))}: "):
        append_jsonl(tmp_path, {"id": "1"})


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_earlier_rejects_are_skipped_and_counted_unless_retried(tmp_path):
    output, rejects = tmp_path / "out.jsonl", tmp_path / "out.rejects.jsonl"
    write_rows(output, [{"id": "ok"}, {"id": "fixed"}])
    write_rows(rejects, [{"id": "wrong", "reason": "no_correct_trace", "detail": ""},
                         {"id": "fixed", "reason": "no_correct_trace", "detail": ""},
                         {"id": "down", "reason": REQUEST_FAILED, "detail": ""}])
    ids = ["ok", "fixed", "wrong", "down", "new"]

    out = ResumableOutput(output)
    assert out.pending(ids, str) == ["down", "new"]  # a failed request is always redone
    # "fixed" was rejected, then accepted by a later run: it counts as accepted.
    summary = out.summary()
    assert (summary["skipped"], summary["skipped_rejected"]) == (3, 1)
    assert summary["earlier_accepted"] == 2

    out = ResumableOutput(output, retry_rejected=True)
    assert out.pending(ids, str) == ["wrong", "down", "new"]
    assert (out.skipped, out.skipped_rejected) == (2, 0)
