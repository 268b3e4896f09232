"""Frozen attrs records <-> plain msgpack-able data, driven by the records' annotations.

One `Codec` is built for a root record class (the `.pfc` uses `Codec(Program)`). It walks
the type annotations of the root's fields (`attrs.fields`, `typing.get_type_hints`) and
collects every attrs record class they reach: that set, `Codec.records`, is the allow-list
of what a decode may build. Nothing else is ever constructed, imported or looked up.

Encoding, by annotation:

==================================  ===========================================================
annotation                          data
==================================  ===========================================================
a record class                      a map ``{field name: value}``; a field equal to its
                                    default is left out
``A | B`` (records, with or         the record's map with ``"$": "<class name>"`` added (a
without ``None``)                   tag is needed only where more than one record can stand)
``X | None``                        ``None`` or X's data
``tuple[X, ...]``, ``tuple[X, Y]``  a list (decoded back to a tuple)
``list[X]``                         a list
``dict[str, X]``                    a map with text keys
str int float bool None             themselves (``int`` refuses a bool; ``float`` wants a float)
``Any``                             the value as it is (constants, demos: free data; the
                                    caller's msgpack layer keeps tuples apart from lists)
==================================  ===========================================================

Decoding checks every value against its annotation as it builds the records, so a decoded
program is well-typed field by field; a wrong value is a `CodecError` naming where it is
("Param.role is int, expected str"). `checks` adds rules a class's values keep beyond
their field types (a function returning an error text, or None), run on each record built.
A record class added to the IR needs no code here: its annotations are its encoding.
"""

from __future__ import annotations

import types as pytypes
import typing
from typing import Any, Callable, Mapping

import attrs

TAG = "$"
_NONE = type(None)
_MISSING = object()
_SCALARS = (str, int, float, bool, _NONE)


class CodecError(ValueError):
    """Data that does not decode to the annotated type, or a value that cannot be encoded."""


def _name(hint: Any) -> str:
    members = _union_members(hint)
    if members is not None:
        return " | ".join("None" if m is _NONE else _name(m) for m in members)
    return hint.__name__ if isinstance(hint, type) and not typing.get_args(hint) else str(hint).replace("typing.", "")


def _union_members(hint: Any) -> tuple | None:
    if typing.get_origin(hint) in (typing.Union, pytypes.UnionType):
        return typing.get_args(hint)
    return None


class Codec:
    """Encoder and decoder of the records reachable from `root`."""

    def __init__(self, root: type, checks: Mapping[type, Callable[[Any], str | None]] | None = None):
        self.root = root
        self.checks = dict(checks or {})
        self.records: dict[str, type] = {}
        self._hints: dict[type, dict[str, Any]] = {}
        self._decoders: dict[Any, Callable[[Any, Any], Any]] = {}
        self._encoders: dict[Any, Callable[[Any], Any]] = {}
        self._collect(root)

    # -- the allow-list ---------------------------------------------------------------
    def _collect(self, hint: Any) -> None:
        stack = [hint]
        while stack:
            h = stack.pop()
            if attrs.has(h):
                if self.records.get(h.__name__) is h:
                    continue
                if h.__name__ in self.records:
                    raise TypeError(f"two record classes named {h.__name__}: tags would be ambiguous")
                self.records[h.__name__] = h
                stack.extend(self.hints(h).values())
            else:
                stack.extend(a for a in typing.get_args(h) if a is not Ellipsis)

    def hints(self, cls: type) -> dict[str, Any]:
        found = self._hints.get(cls)
        if found is None:
            found = self._hints[cls] = typing.get_type_hints(cls)
        return found

    # -- encoding ---------------------------------------------------------------------
    def encode(self, value: Any, hint: Any = None) -> Any:
        """`value` (of annotation `hint`, the root class by default) as plain data."""
        enc = self._encoder(self.root if hint is None else hint)
        return value if enc is None else enc(value)

    def _encoder(self, hint: Any) -> Callable[[Any], Any] | None:
        """The encoder of annotation `hint`; None where the value is its own data (scalars, Any)."""
        if hint not in self._encoders:
            self._encoders[hint] = self._make_encoder(hint)
        return self._encoders[hint]

    def _make_encoder(self, hint: Any) -> Callable[[Any], Any] | None:
        members = _union_members(hint)
        if members is not None:
            return self._union_encoder(hint, members)
        if attrs.has(hint):
            return self._record_encoder(hint)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (tuple, list):
            if origin is list or (len(args) == 2 and args[1] is Ellipsis):
                item = self._encoder(args[0])
                return list if item is None else lambda v: [item(x) for x in v]
            fixed = [self._encoder(a) or _same for a in args]
            return lambda v: [e(x) for e, x in zip(fixed, v, strict=True)]
        if origin is dict:
            inner = self._encoder(args[1])
            return dict if inner is None else lambda v: {k: inner(x) for k, x in v.items()}
        return None  # scalars and Any: msgpack writes them (and refuses what it cannot)

    def _union_encoder(self, hint: Any, members: tuple) -> Callable[[Any], Any] | None:
        records = {m: self._encoder(m) for m in members if attrs.has(m)}
        plain = [(typing.get_origin(m) or m, self._encoder(m)) for m in members if not attrs.has(m) and m is not _NONE]
        if not records and all(e is None for _, e in plain):
            return None  # `str | None` and the like
        tagged = len(records) > 1

        def enc(v):
            if v is None and _NONE in members:
                return None
            e = records.get(type(v))
            if e is not None:
                d = e(v)
                if tagged:
                    d[TAG] = type(v).__name__
                return d
            for cls, e in plain:
                if isinstance(v, cls):
                    return v if e is None else e(v)
            raise CodecError(f"cannot encode a {type(v).__name__} as {_name(hint)}")

        return enc

    def _record_encoder(self, cls: type) -> Callable[[Any], Any]:
        fields: list = []  # filled on first use: records refer to each other (Node -> Loop -> Node)

        def enc(v):
            if not fields:
                hints = self.hints(cls)
                fields.extend((f.name, self._encoder(hints[f.name]), _default(f)) for f in attrs.fields(cls))
            if type(v) is not cls:
                raise CodecError(f"cannot encode a {type(v).__name__} as {cls.__name__}")
            out = {}
            for name, e, default in fields:
                x = getattr(v, name)
                if x is default or (type(x) is type(default) and x == default):
                    continue
                out[name] = x if e is None else e(x)
            return out

        return enc

    # -- decoding ---------------------------------------------------------------------
    def decode(self, data: Any, hint: Any = None) -> Any:
        """The value of annotation `hint` (the root class by default) that `data` encodes."""
        hint = self.root if hint is None else hint
        return self._decoder(hint)(data, _name(hint))

    def _decoder(self, hint: Any) -> Callable[[Any, Any], Any]:
        found = self._decoders.get(hint)
        if found is None:
            found = self._decoders[hint] = self._make_decoder(hint)
        return found

    def _make_decoder(self, hint: Any) -> Callable[[Any, Any], Any]:
        plain = _plain(hint)
        if plain is not None:
            return self._plain_decoder(hint, plain)
        members = _union_members(hint)
        if members is not None:
            return self._union_decoder(hint, members)
        if attrs.has(hint):
            if self.records.get(hint.__name__) is not hint:
                raise TypeError(f"{hint.__name__} is not a record reachable from {self.root.__name__}")
            return self._record_decoder(hint, tagged=False)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (tuple, list):
            return self._sequence_decoder(origin, args)
        if origin is dict:
            inner = self._decoder(args[1])

            def dec_dict(d, where):
                _expect(d, dict, where, "a map")
                for k in d:
                    if type(k) is not str:
                        raise CodecError(f"{_at(where)} has a key of type {_kind(k)}, expected str")
                return {k: inner(x, (where, k)) for k, x in d.items()}

            return dec_dict
        raise TypeError(f"the codec cannot decode annotation {hint!r}")

    @staticmethod
    def _plain_decoder(hint: Any, plain: frozenset | tuple) -> Callable[[Any, Any], Any]:
        if not plain:  # Any
            return lambda d, where: d

        def dec_plain(d, where):
            if type(d) not in plain:
                raise CodecError(f"{_at(where)} is {_kind(d)}, expected {_name(hint)}")
            return d

        return dec_plain

    def _sequence_decoder(self, origin: type, args: tuple) -> Callable[[Any, Any], Any]:
        if origin is list or (len(args) == 2 and args[1] is Ellipsis):
            plain = _plain(args[0])
            item = self._decoder(args[0])

            def dec_seq(d, where):
                _expect(d, list, where, "a list")
                if plain is None:
                    out = [item(x, (where, i)) for i, x in enumerate(d)]
                elif plain:  # scalars: checked in place, nothing to build
                    for i, x in enumerate(d):
                        if type(x) not in plain:
                            item(x, (where, i))  # raises, naming the item
                    out = d
                else:
                    out = d
                return out if origin is list else tuple(out)

            return dec_seq
        fixed = [self._decoder(a) for a in args]

        def dec_fixed(d, where):
            _expect(d, list, where, "a list")
            if len(d) != len(fixed):
                raise CodecError(f"{_at(where)} has {len(d)} items, expected {len(fixed)}")
            return tuple([f(x, (where, i)) for i, (f, x) in enumerate(zip(fixed, d))])

        return dec_fixed

    def _union_decoder(self, hint: Any, members: tuple) -> Callable[[Any, Any], Any]:
        records = {m.__name__: m for m in members if attrs.has(m)}
        plain = [m for m in members if not attrs.has(m) and m is not _NONE]
        if plain and records:
            raise TypeError(f"the codec cannot decode a union of records and other types: {hint!r}")
        optional = _NONE in members
        if len(records) > 1:
            by_tag = {name: self._record_decoder(cls, tagged=True) for name, cls in records.items()}

            def dec_tagged(d, where):
                if d is None and optional:
                    return None
                _expect(d, dict, where, "a map")
                tag = d.get(TAG)
                dec = by_tag.get(tag) if type(tag) is str else None
                if dec is None:
                    raise CodecError(
                        f"{_at(where)} has unknown record tag {_clip(tag)} (expected one of {', '.join(sorted(by_tag))})"
                    )
                return dec(d, where)

            return dec_tagged
        if len(plain) > 1:
            raise TypeError(f"the codec cannot decode an untagged union {hint!r}")
        (inner_hint,) = [*records.values(), *plain]
        inner = self._decoder(inner_hint)

        def dec_optional(d, where):
            return None if d is None and optional else inner(d, where)

        return dec_optional

    def _record_decoder(self, cls: type, tagged: bool) -> Callable[[Any, Any], Any]:
        label = cls.__name__
        expected = f"a map of {label}"
        # field -> (decoder, or None where the value is its own data; the Python types it
        # may then have, () for any; where it is, for errors; its annotation)
        known: dict[str, tuple[Callable[[Any, Any], Any] | None, Any, str, Any]] = {}
        required: list[str] = []
        check = self.checks.get(cls)

        def prepare() -> None:
            hints = self.hints(cls)
            for f in attrs.fields(cls):
                hint = hints[f.name]
                plain = _plain(hint)
                known[f.name] = (self._decoder(hint) if plain is None else None, plain, f"{label}.{f.name}", hint)
                if f.default is attrs.NOTHING:
                    required.append(f.name)

        def dec(d, where):
            if not known:
                prepare()
            _expect(d, dict, where, expected)
            values = {}
            for k, x in d.items():
                if tagged and k == TAG:
                    continue
                found = known.get(k) if type(k) is str else None
                if found is None:
                    raise CodecError(f"{_at(where)}: {label} has no field {_clip(k)}")
                field_dec, plain, at, hint = found
                if field_dec is not None:
                    x = field_dec(x, at)
                elif plain and type(x) not in plain:
                    raise CodecError(f"{at} is {_kind(x)}, expected {_name(hint)}")
                values[k] = x
            for name in required:
                if name not in values:
                    raise CodecError(f"{_at(where)}: {label} needs field '{name}'")
            value = cls(**values)
            if check is not None:
                problem = check(value)
                if problem is not None:
                    raise CodecError(f"{_at(where)} {problem}")
            return value

        return dec


def _plain(hint: Any) -> frozenset | tuple | None:
    """The types a value of `hint` may have where it is its own data: scalars and unions of
    them; () for Any; None where a decoder must build it."""
    if hint is Any:
        return ()
    members = _union_members(hint) or (hint,)
    return frozenset(members) if all(m in _SCALARS for m in members) else None


def _default(f: attrs.Attribute) -> Any:
    if f.default is attrs.NOTHING or isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
        return _MISSING
    return f.default


def _same(v: Any) -> Any:
    return v


def _expect(d: Any, cls: type, where: Any, what: str) -> None:
    if type(d) is not cls:
        raise CodecError(f"{_at(where)} is {_kind(d)}, expected {what}")


def _at(where: Any) -> str:
    """The text of a place: decoders pass (container's place, index or key) down, and only
    an error spells it out."""
    keys = []
    while type(where) is tuple:
        where, key = where
        keys.append(f"[{key!r}]" if type(key) is str else f"[{key}]")
    return where + "".join(reversed(keys))


def _kind(v: Any) -> str:
    return type(v).__name__


def _clip(v: Any, n: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."
