"""JSONL in, JSONL out: strict reading with file:line errors, atomic and resumable writing."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rlkd_lite.errors import InputError, RlkdError

_BOM = b"\xef\xbb\xbf"


def read_jsonl(path: str | os.PathLike[str],
               on_error: Callable[[InputError], None] | None = None) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line of a JSONL file; lines count from 1.

    A line that is not UTF-8, not JSON, or not a JSON object raises InputError naming the file
    and line; with `on_error`, the error is passed to it instead and the line skipped. A file
    with no records at all (empty, or only blank lines) raises InputError, as does a file that
    cannot be opened. A UTF-8 byte-order mark at the start is ignored.
    """
    name = str(path)
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror or exc}", path=name) from None
    seen_any = False
    with handle:
        for line_no, raw in enumerate(handle, 1):
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if raw.isspace():
                continue
            seen_any = True
            try:
                row = _parse_line(raw, name, line_no)
            except InputError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            yield line_no, row
    if not seen_any:
        raise InputError("empty file: no JSON lines", path=name)


def _parse_line(raw: bytes, path: str, line_no: int) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
                         path=path, line=line_no) from None
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        # Some messages end in "at" ("Invalid control character at"): one "at" before the column.
        raise InputError(f"not valid JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}",
                         path=path, line=line_no) from None
    if not isinstance(row, dict):
        raise InputError(f"expected a JSON object, got {json_type(row)}", path=path, line=line_no)
    # JSON may escape half of a UTF-16 pair (a truncated emoji); such text cannot be written
    # back as UTF-8, so it is refused here rather than crashing a write later.
    if _SURROGATE_ESCAPE.search(raw):
        field = _field_with_lone_surrogate(row)
        if field is not None:
            raise InputError("text with half of a UTF-16 surrogate pair (e.g. a cut emoji)",
                             path=path, line=line_no, field=field)
    return row


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _field_with_lone_surrogate(value: Any, name: str = "") -> str | None:
    """The dotted name of the first string in `value` that is not valid Unicode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return name or "(value)"
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _field_with_lone_surrogate(item, f"{name}.{key}" if name else str(key))
        if found is not None:
            return found
    return None


def is_number(value: Any) -> bool:
    """A JSON number: an int or a float, not a boolean (which Python counts as an int)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """A JSON integer, not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "an array", dict: "an object", type(None): "null"}[type(value)]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part.

    The text goes to a temporary file in the same directory, is flushed to disk, and then
    renamed over `path` (a rename within one file system is atomic). A file-system error
    (missing directory, no permission, disk full) raises RlkdError naming the path.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the permissions, as for a plain open().
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        with os.fdopen(os.open(tmp, flags, 0o666), "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise RlkdError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        # Nothing left to remove after the rename. Where the temporary file could not even be
        # made (the parent is a file), removing it fails too: that must not hide the real error.
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON, atomically (see `write_text_atomic`)."""
    write_text_atomic(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def write_jsonl_atomic(path: str | os.PathLike[str], rows: Iterable[Any]) -> None:
    """Write one JSON value per line, atomically (see `write_text_atomic`)."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def append_jsonl(path: str | os.PathLike[str], row: Any) -> None:
    """Append one JSON line and force it to disk, for outputs that resume after a crash.

    If the file ends in a torn line (a crash mid-write), the new row starts on a fresh line so
    that only the torn line is unreadable, not the new row too. A file-system error raises
    RlkdError naming the path.
    """
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        with open(path, "ab+") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise RlkdError(f"cannot write {path}: {exc.strerror or exc}") from None


def check_writable(path: str | os.PathLike[str], *, example: str = "out.jsonl") -> None:
    """Refuse, with an InputError naming `path`, a file that cannot be written: a directory (the
    message suggests `example` as a file name in it), a path under a file, or no permission.
    Run before a long job starts; creates nothing."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"is a directory; give a file path (e.g. {target / example})",
                         path=str(target))
    if target.exists():
        if not os.access(target, os.W_OK):
            raise InputError("no permission to write this file", path=str(target))
        return
    _check_creatable(target)


def check_writable_dir(path: str | os.PathLike[str]) -> None:
    """Refuse, with an InputError naming `path`, a directory that cannot be written in: an
    existing file, a path under a file, or no permission. Creates nothing."""
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise InputError("is a file, not a folder", path=str(target))
        if not os.access(target, os.W_OK | os.X_OK):
            raise InputError("no permission to write in this folder", path=str(target))
        return
    _check_creatable(target)


def _check_creatable(target: Path) -> None:
    """Refuse a path that does not exist yet and cannot be created with its missing folders."""
    folder = target.parent
    while not folder.exists():  # the folders to be made: the first existing one decides
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot be created: {folder} is a file, not a folder",
                         path=str(target))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot be created: no permission to write in {folder}",
                         path=str(target))


def check_not_input(output: str | os.PathLike[str],
                    inputs: dict[str, str | os.PathLike[str] | None]) -> None:
    """Refuse, with an InputError naming `output`, an output that is one of the `inputs` (by
    any path to the same file): writing it would overwrite or append to the input. `inputs`
    maps how the user gave each input (e.g. "--data") to its path, None where not given."""
    for given_as, source in inputs.items():
        # Only existing files can be the same file; os.path.samefile sees links and "a/../b".
        if (source is not None and Path(source).exists() and Path(output).exists()
                and os.path.samefile(source, output)):
            raise InputError(f"is also the input {given_as}; choose another path for the output",
                             path=str(output))
