"""The value types of the language: `text int float bool json list[T] {f: T} enum[A, B]`.

One frozen record, `Type`, covers them all so that the IR stays a small closed set of
data that prints and serializes without special cases.
"""

from __future__ import annotations

from attrs import frozen

SCALARS = ("text", "int", "float", "bool", "json")


@frozen
class Type:
    """`kind` is one of text, int, float, bool, json, list, record, enum.

    `elem` is the element type of a list; `fields` the (name, type) pairs of a record, in
    declaration order; `labels` the members of an enum.
    """

    kind: str
    elem: "Type | None" = None
    fields: tuple[tuple[str, "Type"], ...] = ()
    labels: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list[{self.elem}]"
        if self.kind == "record":
            return "{" + ", ".join(f"{n}: {t}" for n, t in self.fields) + "}"
        if self.kind == "enum":
            return "enum[" + ", ".join(self.labels) + "]"
        return self.kind

    def field(self, name: str) -> "Type | None":
        for n, t in self.fields:
            if n == name:
                return t
        return None


TEXT = Type("text")
INT = Type("int")
FLOAT = Type("float")
BOOL = Type("bool")
JSON = Type("json")


def list_of(elem: Type) -> Type:
    return Type("list", elem=elem)


def record(**fields: Type) -> Type:
    return Type("record", fields=tuple(fields.items()))


def enum(*labels: str) -> Type:
    return Type("enum", labels=tuple(labels))


def assignable(src: Type, dst: Type) -> bool:
    """May a value of type `src` flow where `dst` is expected?

    `json` accepts anything; an enum is a text; an int is a float; lists and records are
    checked structurally (a record may carry extra fields).
    """
    if dst.kind == "json" or src == dst:
        return True
    if dst.kind == "text" and src.kind == "enum":
        return True
    if dst.kind == "enum" and src.kind == "enum":
        return set(src.labels) <= set(dst.labels)
    if dst.kind == "float" and src.kind == "int":
        return True
    if dst.kind == "list" and src.kind == "list":
        return assignable(src.elem, dst.elem)  # type: ignore[arg-type]
    if dst.kind == "record" and src.kind == "record":
        have = dict(src.fields)  # one pass: a scan per field is quadratic on a record of 40,000 fields
        return all(n in have and assignable(have[n], t) for n, t in dst.fields)
    return False


def scalar_type(value: object) -> "Type | None":
    """The type of a scalar literal (bool, int, float, text); None for anything else."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return TEXT
    return None
