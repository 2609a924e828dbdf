"""Partner CSV reports (ad spend, sales): records with their line in the file, or an error naming the file
and line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path


def csv_records(path: Path, text: str, columns: Sequence[str], error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """(line, record) per record; `error` for a missing column or text the csv module cannot read (a lone
    carriage return or a line break in an unquoted field)."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise error(f"{path}:1: missing column {missing[0]!r} (expected header {','.join(columns)})")
        for record in reader:
            yield reader.line_num, record  # the file's line, not the record's index: blank lines count
    except csv.Error as e:
        # DictReader.line_num is only updated after a good record: the inner reader's is the failing line.
        why = str(e).split(" - ")[0]
        raise error(
            f"{path}:{reader.reader.line_num}: {why} "
            "(quote a field that holds a line break; save the file with \\n or \\r\\n line ends)"
        ) from None
