"""`promptc.frontend.py_signatures`: a `use`d Python file typed from its source, never run.

The reference is `promptc.bind`: for every annotation form below, reading the source must
give the types that importing the module and reading its evaluated annotations gives."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from promptc.bind import _bind_one
from promptc.frontend.py_signatures import MAX_SOURCE_BYTES, Signature, SignatureError, read_file, read_signatures
from promptc.types import BOOL, FLOAT, INT, JSON, TEXT, enum, list_of, record

HEADER = """\
import typing
import typing as t
from typing import Any, List, Literal, Optional, TypedDict, Annotated, Dict, Tuple, Union
from typing import Literal as L

class Hit(TypedDict):
    title: str
    score: float

class Scored(Hit):
    rank: int

Point = TypedDict("Point", {"x": int, "y": float})
Label = Literal["yes", "no"]
Labels = list[Label]
Strs = List
class Plain:
    pass
"""

# (annotation text, expected promptc type): each becomes a parameter of its own function
CASES = [
    ("str", TEXT), ("int", INT), ("float", FLOAT), ("bool", BOOL),
    ("list[str]", list_of(TEXT)), ("List[int]", list_of(INT)), ("typing.List[float]", list_of(FLOAT)),
    ("t.List[bool]", list_of(BOOL)), ("tuple[str, ...]", list_of(TEXT)), ("Tuple[int, str]", list_of(INT)),
    ("list[list[str]]", list_of(list_of(TEXT))), ("list", JSON), ("dict", JSON), ("dict[str, int]", JSON),
    ("Dict[str, int]", JSON), ("Any", JSON), ("typing.Any", JSON), ("None", JSON), ("object", JSON),
    ('Literal["a", "b"]', enum("a", "b")), ('L["x"]', enum("x")), ('typing.Literal["p", "q"]', enum("p", "q")),
    ("Literal[1, 2]", JSON), ("Label", enum("yes", "no")), ("Labels", list_of(enum("yes", "no"))),
    ("Strs[str]", list_of(TEXT)), ("Optional[str]", JSON), ("Union[str, int]", JSON), ("str | None", JSON),
    ("Annotated[int, 'a count']", INT), ("Hit", record(title=TEXT, score=FLOAT)),
    ("Scored", record(title=TEXT, score=FLOAT, rank=INT)), ("Point", record(x=INT, y=FLOAT)),
    ("list[Hit]", list_of(record(title=TEXT, score=FLOAT))), ("Plain", JSON), ("'str'", TEXT),
    ("'list[Label]'", list_of(enum("yes", "no"))),
]


def _module(tmp_path: Path, body: str, name: str = "m.py") -> tuple[Path, str]:
    text = textwrap.dedent(body)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, text


def _cases_module() -> str:
    funcs = [f"def f{i}(x: {ann}) -> {ann}:\n    return x\n" for i, (ann, _) in enumerate(CASES)]
    return HEADER + "\n" + "\n".join(funcs)


@pytest.mark.parametrize("future", [False, True], ids=["evaluated", "future-annotations"])
def test_annotations_read_as_binding_reads_them(tmp_path, future):
    text = ("from __future__ import annotations\n" if future else "") + _cases_module()
    path, _ = _module(tmp_path, text, f"cases_{future}.py")
    sigs = read_signatures(path, text)
    for i, (ann, expected) in enumerate(CASES):
        sig = sigs[f"f{i}"]
        assert sig.params == (("x", expected),) and sig.returns == expected, ann
        bound = _bind_one(str(path.name), f"f{i}", (tmp_path,))  # the reference: import and read
        assert (bound.params, bound.returns) == (sig.params, sig.returns), ann


def test_arity_docstring_position_and_what_is_left_out(tmp_path):
    path, text = _module(tmp_path, '''\
        import os

        def search(query: str, k: int = 3, *rest, flag: bool = False, **kw) -> list[str]:
            """Find passages.

            Ranked by BM25."""
            return []

        async  def  fetch(url):
            return url

        def replaced(x: int) -> int: ...
        replaced = os.path.join

        def twice(a: str) -> str: ...
        def twice(a: int, b: int) -> int: ...

        class Tool:
            def method(self, x: str) -> str: ...

        if True:
            def hidden(): ...
        def café(été: str) -> str: ...
    ''')
    sigs = read_signatures(path, text)
    assert set(sigs) == {"search", "fetch", "twice", "café"}
    s = sigs["search"]
    assert s == Signature("search", (("query", TEXT), ("k", INT)), list_of(TEXT), "Find passages.\n\nRanked by BM25.", 3, 5, 1)
    assert not s.workflow and s.notes == ()
    f = sigs["fetch"]
    assert (f.params, f.returns, f.required, f.doc) == ((("url", JSON),), JSON, 1, "")
    assert (f.line, f.col) == (9, 13)
    assert sigs["twice"].params == (("a", INT), ("b", INT))  # the last `def` wins, as in Python
    assert (sigs["café"].line, sigs["café"].col) == (23, 5)
    # the same arity binding computes
    assert _bind_one("m.py", "search", (tmp_path,)).required == s.required


def test_an_undefined_annotation_leaves_the_function_untyped_with_a_reason(tmp_path):
    path, text = _module(tmp_path, '''\
        from __future__ import annotations
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from elsewhere import Thing

        def f(a: str, b: Thing) -> int: ...
        def g(a: str, b: "Missing[int]") -> int: ...
    ''')
    sigs = read_signatures(path, text)
    for name, missing in (("f", "Thing"), ("g", "Missing")):
        sig = sigs[name]
        assert (sig.params, sig.returns) == ((("a", JSON), ("b", JSON)), JSON)
        assert any(f"'{missing}'" in n and "does not define" in n for n in sig.notes), sig.notes
        bound = _bind_one("m.py", name, (tmp_path,))
        assert (bound.params, bound.returns) == (sig.params, sig.returns)


def test_notes_say_why_an_annotation_is_json(tmp_path):
    path, text = _module(tmp_path, '''\
        from typing import Optional
        from mylib import Vector

        def f(a: Optional[str], b: Vector, c: "not an expression (", d: 3) -> str | None: ...
    ''')
    sig = read_signatures(path, text)["f"]
    assert [t for _, t in sig.params] == [JSON] * 4 and sig.returns == JSON
    notes = "\n".join(sig.notes)
    for needle in ("parameter 'a': an Optional is json", "parameter 'b': 'Vector' is not a type promptc reads",
                   "parameter 'c': the string annotation", "parameter 'd': 3 is not a type", "the return: a union"):
        assert needle in notes, notes


def test_decorated_workflows_are_flagged(tmp_path):
    path, text = _module(tmp_path, '''\
        import promptc
        import promptc as pc
        from promptc import workflow
        import functools

        @promptc.workflow
        def a(q: str) -> str: return q

        @pc.workflow(train=None)
        def b(q: str) -> str: return q

        @workflow
        def c(q: str) -> str: return q

        @functools.lru_cache
        def d(q: str) -> str: return q

        @promptc.llm(via=None)
        def e(q: str) -> str: ...
    ''')
    sigs = read_signatures(path, text)
    assert {n for n, s in sigs.items() if s.workflow} == {"a", "b", "c"}


def test_reading_never_runs_the_file(tmp_path):
    marker = tmp_path / "ran"
    path, text = _module(tmp_path, f'''\
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")
        raise SystemExit("this module must not run")

        def f(x: str) -> str:
            """doc"""
            return x
    ''')
    assert read_file(path)["f"].params == (("x", TEXT),)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("def f(:\n", "invalid syntax"),
        ("x = 1\x00\n", "null"),
        ("x = " + "(" * 300 + ")" * 300 + "\n", "cannot read"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "cannot read"),
    ],
    ids=["syntax", "nul", "parens", "deep"],
)
def test_a_file_that_is_not_python_is_one_error(tmp_path, text, message):
    with pytest.raises(SignatureError) as e:
        read_signatures(tmp_path / "bad.py", text)
    assert message in str(e.value) and "bad.py" in str(e.value)


def test_hostile_annotations_stay_bounded(tmp_path):
    deep = "list[" * 60 + "str" + "]" * 60
    loop = "A = B\nB = A\n"
    chain = "x" + ".y" * 1500
    text = f"{loop}\ndef f(a: {deep}, b: A, c: {chain}) -> 'A': ...\n"
    sig = read_signatures(tmp_path / "h.py", text)["f"]
    assert sig.params[1] == ("b", JSON) and sig.returns == JSON
    assert any("nested too deeply" in n for n in sig.notes)


def test_read_file_decodes_like_python_and_refuses_what_it_cannot_read(tmp_path):
    latin = tmp_path / "latin.py"
    latin.write_bytes(b"# -*- coding: latin-1 -*-\ndef f(x: str) -> str:\n    '''caf\xe9'''\n")
    assert read_file(latin)["f"].doc == "café"
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbfdef f(x: int) -> int: ...\n")
    assert read_file(bom)["f"].params == (("x", INT),)
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"def f(): '\xff'\n")
    with pytest.raises(SignatureError, match="cannot decode 'bad.py'"):
        read_file(bad)
    with pytest.raises(SignatureError, match="cannot read 'missing.py'"):
        read_file(tmp_path / "missing.py")
    fifo = tmp_path / "fifo.py"
    os.mkfifo(fifo)
    with pytest.raises(SignatureError, match="not a regular file"):
        read_file(fifo)
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(SignatureError, match="over 4 MB"):
        read_file(big)


def test_stdlib_functions_read_as_bound():
    """promptc's own std modules: every function reads from source as importing it binds it."""
    import promptc.stdlib as std

    root = Path(std.__file__).parent
    checked = 0
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for name, sig in read_file(path).items():
            if name.startswith("_"):
                continue
            bound = _bind_one(f"std.{path.stem}", name, ())
            assert (bound.params, bound.returns, bound.required, bound.doc) == (
                sig.params, sig.returns, sig.required, sig.doc
            ), f"{path.name}:{name}"
            checked += 1
    assert checked > 10
