"""Data at the edge: rows from wherever a user keeps them, checked before the first call.

    rows = read_data("train.csv", fields={"question": "text"})   # a `Dataset`
    rows = as_dataset([{"question": "...", "label": "HUM"}, ...])  # any iterable of mappings
    check_data(program, rows)                                       # DataError before any call

Formats, by file suffix: `.jsonl` (one JSON object per line; also any other suffix), `.json` (an array of
objects), `.csv` (a header row; read with the standard library, every value a string,
which the workflow's typed inputs coerce), `.parquet` (through pyarrow, the `data` extra),
and a folder written by Hugging Face `Dataset.save_to_disk` (through `datasets`, the
`data` extra). In memory: a list of dicts, any iterable of mappings, a pandas DataFrame
(its records) or a Hugging Face `Dataset`.

A `Dataset` remembers where each row came from (`FILE:LINE`: the JSONL line, the CSV
line, the row number of an array or a table), so an error names the row. Values are
checked as they are read: a string holding a lone surrogate (valid JSON, but not text
any file can hold) or a value nested deeper than `MAX_DEPTH` is a located `DataError`
at once, never a failure after the work is done.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from attrs import frozen

from promptc.ir import Program

MAX_DEPTH = 64  # nesting of lists and objects inside one value


class DataError(ValueError):
    """Data that cannot be used: the message names the file (or `data`) and the row."""


@frozen
class Dataset:
    """Rows (plain dicts) and where each came from: `where[i]` is `FILE:LINE` or `NAME row N`."""

    rows: tuple[dict[str, Any], ...]
    where: tuple[str, ...]
    name: str = "data"

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def head(self, n: int | None) -> "Dataset":
        return self if n is None else Dataset(self.rows[:n], self.where[:n], self.name)


# -- reading ---------------------------------------------------------------------------


def read_data(path: str | Path, *, fields: Mapping[str, str] | None = None, limit: int | None = None) -> Dataset:
    """The rows of a data file (the format from its suffix, see the module docstring).

    `fields` maps workflow names to the file's column names (`--field INPUT=COLUMN`).
    """
    path = Path(path)
    shown = str(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        pairs = _read_hf(path)
    elif suffix in (".jsonl", ".ndjson"):
        pairs = _read_jsonl(path)
    elif suffix == ".json":
        pairs = _read_json_array(path)
    elif suffix == ".csv":
        pairs = _read_csv(path)
    elif suffix == ".parquet":
        pairs = _read_parquet(path)
    else:  # any other name is read as JSON Lines, the format promptc always read
        pairs = _read_jsonl(path)
    rows, where = [], []
    for loc, row in pairs:
        if limit is not None and len(rows) >= limit:
            break
        rows.append(_renamed(row, fields, loc))
        where.append(loc)
    return Dataset(tuple(rows), tuple(where), shown)


def as_dataset(data: Any, name: str = "data", *, fields: Mapping[str, str] | None = None) -> Dataset:
    """`data` as a `Dataset`: a path is read (`read_data`); a pandas DataFrame gives its
    records; any other iterable must yield mappings (a list of dicts, a `datasets.Dataset`)."""
    if isinstance(data, Dataset):
        return data if not fields else Dataset(
            tuple(_renamed(r, fields, w) for r, w in zip(data.rows, data.where)), data.where, data.name
        )
    if isinstance(data, (str, Path)):
        return read_data(data, fields=fields)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        data = data.to_dict(orient="records")
    if isinstance(data, Mapping) or not isinstance(data, Iterable):
        raise DataError(f"{name}: expected rows (a list of dicts, a DataFrame, a Dataset or a file path), "
                        f"got {type(data).__name__}")
    rows, where = [], []
    for i, row in enumerate(data, 1):
        loc = f"{name} row {i}"
        if not isinstance(row, Mapping):
            raise DataError(f"{loc}: expected a mapping of field names to values, got {type(row).__name__}")
        row = {str(k): v for k, v in row.items()}
        _check_value(row, loc)
        rows.append(_renamed(row, fields, loc))
        where.append(loc)
    return Dataset(tuple(rows), tuple(where), name)


def _renamed(row: dict[str, Any], fields: Mapping[str, str] | None, loc: str) -> dict[str, Any]:
    if not fields:
        return row
    out = dict(row)
    for name, column in fields.items():
        if column in row:
            out[name] = row[column]
    return out


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            loc = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                col = len(raw[: e.start].decode("utf-8", "replace")) + 1
                raise DataError(f"{loc}:{col}: invalid UTF-8 byte 0x{raw[e.start]:02X}") from None
            if not line.strip():
                continue
            row = _loads(line, loc, one_line=True)
            if not isinstance(row, dict):
                raise DataError(f"{loc}:1: expected a JSON object, got {_json_kind(row)}")
            _check_value(row, loc)
            yield loc, row


def _read_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    text = _read_text(path)
    data = _loads(text, str(path))
    if isinstance(data, dict) and isinstance(data.get("rows"), list):
        data = data["rows"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {_json_kind(data)}")
    for i, row in enumerate(data, 1):
        loc = f"{path} row {i}"
        if not isinstance(row, dict):
            raise DataError(f"{loc}: expected a JSON object, got {_json_kind(row)}")
        _check_value(row, loc)
        yield loc, row


def _read_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    text = _read_text(path)
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [h.strip() for h in header]
        if len(set(names)) != len(names):
            raise DataError(f"{path}:1: the header repeats a column name ({', '.join(names)})")
        start = reader.line_num + 1
        for values in reader:
            loc = f"{path}:{start}"
            start = reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(names):
                raise DataError(f"{loc}: {len(values)} value(s) for {len(names)} column(s) ({', '.join(names)})")
            row = dict(zip(names, values))
            _check_value(row, loc)
            yield loc, row
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV: {e}") from None


def _read_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - an optional extra, imported when asked
    except ImportError:
        raise DataError(f"{path}: reading .parquet needs pyarrow: pip install 'promptc[data]'") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow's own error classes: a file that is not Parquet, unreadable
        raise DataError(f"{path}: cannot read as Parquet: {e}") from None
    for i, row in enumerate(table.to_pylist(), 1):
        loc = f"{path} row {i}"
        _check_value(row, loc)
        yield loc, row


def _read_hf(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not (path / "dataset_info.json").is_file() and not (path / "dataset_dict.json").is_file():
        raise DataError(f"{path}: a folder, but not one written by datasets' save_to_disk")
    try:
        import datasets  # noqa: PLC0415 - an optional extra, imported when asked
    except ImportError:
        raise DataError(f"{path}: reading a saved Hugging Face dataset needs datasets: pip install 'promptc[data]'") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets' own error classes
        raise DataError(f"{path}: cannot load the saved dataset: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise DataError(f"{path}: a dataset with splits ({', '.join(ds)}): give the folder of one split")
    for i, row in enumerate(ds, 1):
        loc = f"{path} row {i}"
        _check_value(row, loc)
        yield loc, dict(row)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 byte 0x{data[e.start]:02X}") from None


def _loads(text: str, loc: str, *, one_line: bool = False) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        where = f"{loc}:{e.colno}" if one_line else f"{loc}:{e.lineno}:{e.colno}"
        raise DataError(f"{where}: not valid JSON: {e.msg}") from None
    except RecursionError:
        raise DataError(f"{loc}: a value nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:  # e.g. a number too long to convert
        raise DataError(f"{loc}: not valid JSON: {e}") from None


def _json_kind(v: Any) -> str:
    return type(v).__name__


def _check_value(value: Any, loc: str) -> None:
    """Refuse what later stages cannot handle: lone surrogates, absurd nesting (iterative)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DataError(f"{loc}: a value nested more than {MAX_DEPTH} levels deep")
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as e:
                raise DataError(f"{loc}: a string holds a lone surrogate (U+{ord(v[e.start]):04X}), not text") from None
        elif isinstance(v, Mapping):
            for k, x in v.items():
                stack.append((k, depth + 1))
                stack.append((x, depth + 1))
        elif isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1) for x in v)


# -- checking ---------------------------------------------------------------------------


def check_data(program: Program, data: Dataset, *, answer: bool = True) -> None:
    """Every row has each workflow input and (with `answer`) the answer field of the
    program's `train { answer F }` (else "answer"); else a `DataError` naming the first
    bad row, the missing field and the fields that row has. An empty dataset is an error."""
    if not data.rows:
        raise DataError(f"{data.name}: no rows")
    wanted = [name for name, _t in program.workflow.inputs]
    if answer:
        wanted.append(program.train.answer if program.train is not None else "answer")
    for row, loc in zip(data.rows, data.where):
        missing = [f for f in wanted if f not in row]
        if missing:
            has = ", ".join(sorted(row)) or "none"
            what = "field" if len(missing) == 1 else "fields"
            raise DataError(
                f"{loc}: missing {what} {', '.join(repr(m) for m in missing)} "
                f"(workflow '{program.workflow.name}' needs {', '.join(wanted)}; the row has {has})"
            )


def parse_fields(items: Iterable[str]) -> dict[str, str]:
    """`--field INPUT=COLUMN` options as {INPUT: COLUMN}."""
    out = {}
    for item in items:
        name, eq, column = item.partition("=")
        if not eq or not name.strip() or not column.strip():
            raise DataError(f"--field {item!r}: expected INPUT=COLUMN")
        out[name.strip()] = column.strip()
    return out


__all__ = ["DataError", "Dataset", "MAX_DEPTH", "as_dataset", "check_data", "parse_fields", "read_data"]
