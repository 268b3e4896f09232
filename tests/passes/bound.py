"""The resolve and type-check passes as the compile driver runs them: given the program's
functions bound by `promptc.compiler.Loader` (a pass imports no module itself)."""

from promptc.compiler import Loader
from promptc.ir import Program
from promptc.passes import resolve as _resolve, typecheck as _typecheck


def resolve(program: Program) -> Program:
    return _resolve.resolve(program, Loader().functions(program))


def typecheck(program: Program) -> Program:
    return _typecheck.typecheck(program, Loader().functions(program))
