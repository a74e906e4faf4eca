"""Reading trace CSV files row by row, with errors that name the file, the line, the column and the problem.

Loaders read the cells they need with the small parsers below; a parser raises `CellError`, which
`Table.rows` turns into a `TraceError` at the right line. The csv module, not pandas: the traces are
small and a loader should answer in milliseconds."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class TraceError(ValueError):
    """A trace or cluster file that cannot be read: "path:line: column: problem"."""

    def __init__(self, problem: str, *, path: Path | str | None = None, line: int | None = None, column: str = ""):
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        what = f"{column}: " if column else ""
        super().__init__(f"{where}{what}{problem}")


class CellError(ValueError):
    """A bad cell, before the table knows its line."""

    def __init__(self, column: str, problem: str):
        super().__init__(problem)
        self.column = column
        self.problem = problem


class Table:
    """A CSV file with a header row (or a header given apart, for files published without one).

    The file is read and decoded whole when the table is made (trace files are megabytes at most); `index`
    maps column names to positions; `rows()` yields (line number, cells) and checks each row has as many
    cells as the header."""

    def __init__(
        self,
        path: Path,
        required: Sequence[str],
        optional: Sequence[str] = (),
        *,
        header: Sequence[str] | None = None,
        strict: bool = False,
        delimiter: str = ",",
    ):
        self.path = path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TraceError("no such file", path=path) from None
        except IsADirectoryError:
            raise TraceError("not a file", path=path) from None
        except OSError as exc:
            raise TraceError(f"cannot read: {exc.strerror}", path=path) from None
        # Decoded whole, so a bad byte's line is known exactly (a streaming decoder reads ahead).
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise TraceError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path, line=line) from None
        self._reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        self._has_header = header is None
        try:
            names = list(header) if header is not None else next(self._reader, None)
        except csv.Error as exc:
            raise TraceError(f"not a readable CSV file: {exc}", path=path, line=1) from None
        if not names:
            raise TraceError("the file is empty (no header row)", path=path, line=1)
        self.header = [name.strip() for name in names]
        self.index = {name: i for i, name in enumerate(self.header)}
        missing = [name for name in required if name not in self.index]
        if missing:
            raise TraceError(
                f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"the header has {', '.join(self.header)}",
                path=path,
                line=1,
                column="header",
            )
        if strict:
            known = set(required) | set(optional)
            unknown = [name for name in self.header if name not in known]
            if unknown:
                raise TraceError(
                    f"unknown column {unknown[0]!r}; columns are {', '.join([*required, *optional])}",
                    path=path,
                    line=1,
                    column="header",
                )

    def has(self, column: str) -> bool:
        return column in self.index

    def error(self, line: int, column: str, problem: str) -> TraceError:
        return TraceError(problem, path=self.path, line=line, column=column)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line, cells) for each non-blank row. A row with the wrong number of cells is an error."""
        width = len(self.header)
        line = 1 if self._has_header else 0
        try:
            for cells in self._reader:
                line = self._reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                if len(cells) != width:
                    raise self.error(line, "row", f"has {len(cells)} cells, the header has {width}")
                yield line, cells
        except csv.Error as exc:
            raise self.error(line + 1, "row", f"not valid CSV: {exc}") from None

    def parse(self, build: Callable[[list[str]], T]) -> Iterator[T]:
        """`build(cells)` for each row; a `CellError` it raises becomes a `TraceError` at the row's line."""
        for line, cells in self.rows():
            try:
                yield build(cells)
            except CellError as exc:
                raise self.error(line, exc.column, exc.problem) from None


# Parsers of one cell. Each takes the text and the column name (for the message) and raises CellError.


def integer(text: str, column: str, *, low: int | None = 0, high: int | None = None) -> int:
    """A whole number; "12.0" is accepted (some traces write integers as floats)."""
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise CellError(column, f"expected a whole number, got {text!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise CellError(column, f"expected a whole number, got {text!r}") from None
        value = int(number)
    if low is not None and value < low:
        raise CellError(column, f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise CellError(column, f"must be at most {high}, got {value}")
    return value


def number(text: str, column: str, *, low: float | None = 0.0, positive: bool = False) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise CellError(column, f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CellError(column, f"expected a finite number, got {text!r}")
    if positive and value <= 0:
        raise CellError(column, f"must be above 0, got {text}")
    if low is not None and value < low:
        raise CellError(column, f"must be at least {low:g}, got {text}")
    return value


def optional_number(text: str, column: str) -> float | None:
    """A number, or None for an empty cell or NaN (how the Alibaba traces write "outside the window")."""
    stripped = text.strip()
    if not stripped or stripped.lower() == "nan":
        return None
    return number(stripped, column)
