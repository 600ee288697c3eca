"""Labelled sentences (or sentence pairs) from TSV, CSV or JSONL files, and their label map.

    .tsv    a header row naming the columns, tab-separated, no quoting (GLUE's and SST-2's files)
    .csv    a header row, comma-separated, double-quote quoting
    .jsonl  one JSON object a line, the columns are its keys

Columns: `text_column` (default: `sentence`, else `text`), optional `pair_column` (a second
sentence: entailment, paraphrase), `label_column` (default `label`). Labels may be any strings;
integers are ordered numerically, other labels alphabetically, and that order is the class ids,
saved beside the model as labels.json.
"""

import csv
import dataclasses
import json
import os

from keras_mlm.errors import UserInputError

FORMATS = (".tsv", ".csv", ".jsonl")
DEFAULT_TEXT_COLUMNS = ("sentence", "text")


@dataclasses.dataclass(frozen=True)
class Examples:
    texts: list
    pairs: list  # None when there is no pair column
    labels: list  # label strings
    lines: list  # the file line of each example, for error messages
    path: str


def _rows(path):
    """(line number, {column: value}) for every data row; the column names of the file."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise UserInputError(f"{path}: unsupported file type {suffix or '(none)'} (allowed: {', '.join(FORMATS)})")
    try:
        f = open(path, encoding="utf-8", newline="")
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    with f:
        try:
            if suffix == ".jsonl":
                rows, columns = [], set()
                for number, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise UserInputError(f"{path}:{number}: not valid JSON ({e.msg})") from None
                    if not isinstance(row, dict):
                        raise UserInputError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                    columns.update(row)
                    rows.append((number, row))
                return rows, sorted(columns)
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if suffix == ".tsv" else csv.reader(f)
            header = next(reader, None)
            if not header:
                raise UserInputError(f"{path}:1: empty file (a header row naming the columns comes first)")
            rows = []
            for row in reader:
                number = reader.line_num
                if not row or row == [""]:
                    continue
                if len(row) != len(header):
                    sep = "tab" if suffix == ".tsv" else "comma"
                    raise UserInputError(f"{path}:{number}: expected {len(header)} {sep}-separated columns, got {len(row)}")
                rows.append((number, dict(zip(header, row))))
            return rows, header
        except UnicodeDecodeError as e:
            raise UserInputError(f"{path}: not UTF-8 (byte offset {e.start})") from None
        except csv.Error as e:
            raise UserInputError(f"{path}: {e}") from None


def read_examples(path, text_column=None, pair_column=None, label_column="label"):
    """An `Examples` of the file; missing columns or values are errors naming the file and line."""
    path = os.fspath(path)
    rows, columns = _rows(path)
    if text_column is None:
        text_column = next((c for c in DEFAULT_TEXT_COLUMNS if c in columns), DEFAULT_TEXT_COLUMNS[0])
    wanted = [c for c in (text_column, pair_column, label_column) if c is not None]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise UserInputError(f"{path}:1: no column {', '.join(map(repr, missing))} (columns: {', '.join(map(str, columns))}); "
                             "choose with --text-column / --pair-column / --label-column")
    texts, pairs, labels, lines = [], [] if pair_column else None, [], []
    for number, row in rows:
        for column in wanted:
            value = row.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise UserInputError(f"{path}:{number}: empty {column!r}")
            if column != label_column and not isinstance(value, str):
                raise UserInputError(f"{path}:{number}: {column!r} must be a string, got {type(value).__name__}")
        label = row[label_column]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise UserInputError(f"{path}:{number}: label must be a string or an integer, got {label!r}")
        texts.append(row[text_column])
        if pairs is not None:
            pairs.append(row[pair_column])
        labels.append(str(label).strip())
        lines.append(number)
    if not texts:
        raise UserInputError(f"{path}: no examples")
    return Examples(texts, pairs, labels, lines, path)


def label_names(labels):
    """The class names in id order: integers numerically, anything else alphabetically."""
    distinct = set(labels)
    if all(label.lstrip("-").isdigit() for label in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def label_ids(examples, names):
    """The examples' labels as ids of `names`; an unknown label names its file and line."""
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for label, line in zip(examples.labels, examples.lines):
        if label not in index:
            raise UserInputError(f"{examples.path}:{line}: label {label!r} never occurs in training (labels: {', '.join(names)})")
        ids.append(index[label])
    return ids
