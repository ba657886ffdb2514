"""Restricted, CPU- and size-bounded Python for BPMN scripts, gateway conditions and DMN entries.

Layers, each covering what the others cannot:
- RestrictedPython routes attribute/item access, iteration and writes through guards and
  refuses `_`-prefixed names, so there is no `__class__`/`__subclasses__` walk to the host.
- Our transformer also routes `*`, `**`, `<<`, `+`, `%` and f-string format specs through
  guards that refuse a too-large result *before* computing it: `'a' * 10**10` or `9**9**9`
  would otherwise run inside one C call that no timer can interrupt. The same goes for a few
  builtins and methods (range, pow, sum, int, Decimal, str.ljust/join/replace...).
- A `sys.settrace` hook (plus a tick in every `while` body) enforces a thread-CPU budget, a
  call-depth limit and a cap on resident-memory growth for everything that runs line by line.
- What a run hands back is size-checked, since the host serializes it later, unbudgeted.
Known gap: str()/repr() of a structure made of shared references (`a = [a, a]` in a loop) is
one C call as large as the logical structure; run workers under an OS memory limit too.
"""

from __future__ import annotations

import ast
import decimal
import functools
import itertools
import math
import operator
import re
import resource
import sys
import time
import types
from datetime import date, datetime, timedelta, timezone
from typing import Any

from RestrictedPython import (
    compile_restricted_eval,
    compile_restricted_exec,
    safe_builtins,
)
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import (
    BasePythonScriptEngineEnvironment,
)

MAX_ITEMS = 1_000_000  # longest sequence/string one operation may build
MAX_INT_BITS = 10_000  # largest integer `*`, `**`, `<<` or int() may build
MAX_DECIMAL_EXP = 4_300  # int(Decimal('1e1000000')) alone is ~30 s of uninterruptible C
MAX_DATA_UNITS = 50_000_000  # logical size of the data a script or expression may hand back
MAX_RSS_GROWTH_KB = 512 * 1024  # resident-memory growth allowed during one run
MAX_CALL_DEPTH = 100  # script frames; far below the recursion limit (C calls between them count too)
FILENAME = "<string>"  # SpiffWorkflow looks for this file name to report the failing line
_TEXT = (str, bytes, bytearray)
_SEQ = (*_TEXT, list, tuple)
_CONTAINERS = (dict, list, tuple, set, frozenset)


class SandboxError(Exception):
    """Something the sandbox refused: a forbidden construct, a timeout or a too-large result."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class _Stop(BaseException):
    """Budget spent. Not an `Exception` (and `BaseException` is not exposed), so a script's
    `except Exception:` cannot swallow it and carry on."""


def _refuse(vi: str, en: str) -> None:
    raise SandboxError(f"{vi} / {en}")


def _check_units(n: Any) -> None:
    if isinstance(n, int) and n > MAX_ITEMS:
        _refuse(f"Kết quả quá lớn (≥ {n} phần tử, tối đa {MAX_ITEMS})",
                f"Result too large (≥ {n} items, max {MAX_ITEMS})")


def _check_bits(bits: float) -> None:
    if bits > MAX_INT_BITS:
        _refuse(f"Số nguyên quá lớn (> {MAX_INT_BITS} bit)", f"Integer too large (> {MAX_INT_BITS} bits)")


def _size(obj: Any, limit: int, memo: dict | None = None) -> int:
    """Logical size (items + characters) counting a shared reference each time it appears, as
    str() or JSON would: `[a, a]` nested 40 deep is 2**40. Memoised per container, so it costs
    the physical size. Cycles, too-deep nesting and anything above limit return > limit."""
    if isinstance(obj, _TEXT):
        return len(obj)
    if not isinstance(obj, _CONTAINERS):
        return 0
    memo = {} if memo is None else memo
    if id(obj) in memo:
        return memo[id(obj)]
    memo[id(obj)] = total = limit + 1  # if met again before we finish, it is a cycle
    try:
        total = len(obj)
        for item in itertools.chain(obj.keys(), obj.values()) if isinstance(obj, dict) else obj:
            if total > limit:
                break
            if isinstance(item, (*_TEXT, *_CONTAINERS)):
                total += _size(item, limit, memo)
    except RecursionError:
        total = limit + 1
    memo[id(obj)] = total
    return total


# --- operator guards: check the operands, then let the real operator run --------------------
def _check_mul(a: Any, b: Any) -> None:
    if isinstance(a, int) and isinstance(b, int):
        _check_bits(a.bit_length() + b.bit_length())
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, _SEQ) and isinstance(n, int) and n > 1:
            _check_units(_size(seq, MAX_ITEMS // n) * n)


def _check_pow(a: Any, b: Any) -> None:
    if isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        _check_bits(b * math.log2(abs(a)))


def _check_lshift(a: Any, b: Any) -> None:
    if isinstance(a, int) and isinstance(b, int) and a:
        _check_bits(a.bit_length() + b)


def _check_add(a: Any, b: Any) -> None:
    if isinstance(a, _SEQ) and isinstance(b, _SEQ):
        _check_units(len(a) + len(b))


_PRINTF = re.compile(r"%(?:%|(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?)")


def _check_widths(numbers: list[str]) -> None:
    """Widths/precisions in a format: '%1000000000d' or f'{x:>{n}}' builds a huge string."""
    if "*" in numbers:
        _refuse("Độ rộng '*' trong định dạng không được phép", "'*' width in a format is not allowed")
    _check_units(sum(int(n) if len(n) < 8 else MAX_ITEMS + 1 for n in numbers if n))


def _check_mod(a: Any, b: Any) -> None:
    if isinstance(a, _TEXT):
        text = a if isinstance(a, str) else a.decode("latin-1")
        _check_widths([g for m in _PRINTF.finditer(text) for g in m.groups() if g])


def _guarded(check, op):
    def guard(a, b):
        check(a, b)
        return op(a, b)
    return guard


_BINOP_GUARDS = {  # AST operator -> (guard name, function), also used for `x op= y`
    ast.Mult: ("_mul_", _guarded(_check_mul, operator.mul)),
    ast.Pow: ("_pow_", _guarded(_check_pow, operator.pow)),
    ast.LShift: ("_lshift_", _guarded(_check_lshift, operator.lshift)),
    ast.Add: ("_add_", _guarded(_check_add, operator.add)),
    ast.Mod: ("_mod_", _guarded(_check_mod, operator.mod)),
}
_INPLACE = {
    "+=": _guarded(_check_add, operator.iadd), "*=": _guarded(_check_mul, operator.imul),
    "**=": _guarded(_check_pow, operator.ipow), "<<=": _guarded(_check_lshift, operator.ilshift),
    "%=": _guarded(_check_mod, operator.imod), "-=": operator.isub, "/=": operator.itruediv,
    "//=": operator.ifloordiv, ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior,
    "^=": operator.ixor, "@=": operator.imatmul,
}


def _format_(value: Any, conversion: int, spec: str) -> str:
    _check_widths(re.findall(r"\d+", spec))
    convert = {ord("s"): str, ord("r"): repr, ord("a"): ascii}.get(conversion)
    return format(convert(value) if convert else value, spec)


# --- attribute guard: no dunders/introspection, and bounds on the few methods that grow -----
def _pad(s, a, kw):
    return a[0] if a else kw.get("width", 0)


def _join(s, a, kw):
    return sum(len(i) for i in a[0] if isinstance(i, _TEXT)) + len(s) * len(a[0]) if a else 0


def _translate(s, a, kw):
    values = a[0].values() if isinstance(a[0], dict) else a[0]
    return len(s) * max([len(v) for v in values if isinstance(v, _TEXT)], default=1)


_GROWING = {  # method of str/bytes/int -> upper bound of the result length, checked before the call
    "ljust": _pad, "rjust": _pad, "center": _pad, "zfill": _pad, "join": _join,
    "expandtabs": lambda s, a, kw: len(s) * (a[0] if a else kw.get("tabsize", 8)),
    "replace": lambda s, a, kw: len(s) + s.count(a[0]) * len(a[1]) if len(a) > 1 else 0,
    "translate": lambda s, a, kw: _translate(s, a, kw) if a else 0,
    "to_bytes": lambda n, a, kw: a[0] if a else kw.get("length", 1),
}
_BLOCKED_ATTRS = INSPECT_ATTRIBUTES | {"format", "format_map", "mro", "from_bytes"}


def _getattr_(obj: Any, name: str) -> Any:
    if not isinstance(name, str) or name.startswith("_") or name in _BLOCKED_ATTRS:
        _refuse(f"Thuộc tính không được phép: {name!r}", f"Attribute not allowed: {name!r}")
    value = getattr(obj, name)
    if name not in _GROWING:
        return value
    if isinstance(obj, type):  # str.ljust(s, n) would dodge the bound below
        _refuse(f"Hãy gọi {name}() trên giá trị", f"Call {name}() on the value itself")
    if not isinstance(obj, (*_TEXT, int)):
        return value

    def checked(*args, **kwargs):
        if name == "join" and args:  # materialise once: the bound must see the same items
            args = (list(args[0]), *args[1:])
        _check_units(_GROWING[name](obj, args, kwargs))
        return value(*args, **kwargs)
    return checked


# --- safer builtins -----------------------------------------------------------------------
def _range(*args: int) -> range:
    r = range(*args)
    try:
        _check_units(len(r))
    except OverflowError:
        _check_units(sys.maxsize)
    return r


def _pow(base: Any, exp: Any, mod: Any = None) -> Any:
    if mod is None:
        _check_pow(base, exp)
    elif isinstance(exp, int) and isinstance(mod, int) and exp.bit_length() * mod.bit_length() ** 2 > 2**35:
        # modular exponentiation costs ~ exponent bits x modulus bits², 10k x 10k bits is 2 s
        _refuse("Lũy thừa modulo quá lớn", "Modular power too large")
    return pow(base, exp, mod)


def _zip(*iterables: Any, strict: bool = False) -> list:
    # Eager on purpose: a million nested lazy zip/enumerate objects overflow the C stack
    # (a segfault of the whole process) when consumed or freed.
    return list(zip(*iterables, strict=strict))


def _enumerate(iterable: Any, start: int = 0) -> list:
    return list(enumerate(iterable, start))


def _sum(iterable: Any, start: Any = 0) -> Any:
    if isinstance(start, _SEQ):  # sum(lists, []) is a quadratic concatenation inside one C call
        _refuse("sum() chỉ dùng cho số", "sum() is for numbers; use a comprehension")
    return sum(iterable, start)


class _CheckedType(type):
    """Stand-in for a builtin type whose constructor result is checked. Calls return instances
    of the real type (serializers match exact types) and isinstance() keeps working."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        value = cls.wrapped(*args, **kwargs)
        cls.check(value)
        return value

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.wrapped)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.wrapped)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.wrapped, name)


class _SafeInt(metaclass=_CheckedType):
    # int('f' * 250000, 16) is cheap, but dividing such numbers takes seconds inside one C call.
    wrapped = int
    check = staticmethod(lambda n: _check_bits(n.bit_length()))


class _SafeDecimal(metaclass=_CheckedType):
    wrapped = decimal.Decimal

    @staticmethod
    def check(d: decimal.Decimal) -> None:
        if d.is_finite() and max(abs(d.adjusted()), len(d.as_tuple().digits)) > MAX_DECIMAL_EXP:
            _refuse("Số Decimal quá lớn", "Decimal too large")


def _write_(obj: Any) -> Any:
    """Target of `obj[k] = v`, `del obj[k]` and `obj.attr = v`: only plain lists and dicts."""
    if type(obj) not in (dict, list):
        _refuse(f"Không được sửa đối tượng {type(obj).__name__}", f"Cannot modify a {type(obj).__name__}")
    return obj


def _forbidden(name: str):
    def refuse(*args, **kwargs):
        _refuse(f"Hàm không được phép: {name}", f"Function not allowed: {name}")
    return refuse


def _build_builtins(extra: dict[str, Any]) -> dict[str, Any]:
    b = dict(safe_builtins)
    for name in ("__build_class__", "BaseException", "KeyboardInterrupt", "SystemExit", "GeneratorExit"):
        del b[name]  # no classes; no way to name (and catch) _Stop
    for name in ("__import__", "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "type",
                 "vars", "globals", "locals", "dir", "input", "breakpoint", "memoryview", "object", "super"):
        b[name] = _forbidden(name)  # a clear refusal rather than a NameError
    b.update(
        len=len, min=min, max=max, sum=_sum, abs=abs, round=round, sorted=sorted, any=any, all=all,
        int=_SafeInt, float=float, str=str, bool=bool, list=list, dict=dict, set=set, tuple=tuple,
        enumerate=_enumerate, zip=_zip, isinstance=isinstance, range=_range, pow=_pow,
        datetime=datetime, timedelta=timedelta, date=date, timezone=timezone, Decimal=_SafeDecimal,
        _getattr_=_getattr_, _getitem_=operator.getitem, _getiter_=iter, _write_=_write_,
        _inplacevar_=lambda op, x, y: _INPLACE[op](x, y), _apply_=lambda f, *a, **kw: f(*a, **kw),
        _iter_unpack_sequence_=guarded_iter_unpack_sequence, _unpack_sequence_=guarded_unpack_sequence,
        _print_=PrintCollector, _format_=_format_, **dict(_BINOP_GUARDS.values()),
    )
    b.update(extra)
    return b


# --- compilation ----------------------------------------------------------------------------
class _SandboxTransformer(RestrictingNodeTransformer):
    @staticmethod
    def _call(name: str, args: list[ast.expr], where: ast.AST) -> ast.Call:
        call = ast.Call(func=ast.Name(name, ast.Load()), args=args, keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, where))

    def visit_BinOp(self, node):
        node = super().visit_BinOp(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        return self._call(guard[0], [node.left, node.right], node) if guard else node

    def visit_FormattedValue(self, node):
        node = super().visit_FormattedValue(node)
        if node.format_spec is None:
            return node
        args = [node.value, ast.Constant(node.conversion), node.format_spec]
        return ast.copy_location(ast.FormattedValue(self._call("_format_", args, node), -1, None), node)

    def visit_While(self, node):
        # `while True: pass` compiles to a jump onto itself that emits no trace event (3.11).
        node = super().visit_While(node)
        node.body.insert(0, ast.copy_location(ast.Expr(self._call("_tick_", [], node)), node))
        return node

    def visit_Try(self, node):
        # Once the tracer has raised, CPython switches tracing off: no script code may run after
        # that, so no `finally`, no bare `except`, and handler types are plain names (no calls).
        if node.finalbody:
            self.error(node, "try/finally is not allowed.")
        for handler in node.handlers:
            kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if not all(isinstance(kind, ast.Name) for kind in kinds):
                self.error(handler, "except clauses must name exception classes.")
        return super().visit_Try(node)

    def _not_allowed(self, node):
        self.not_allowed(node)

    # Imports and `with` have no use here; classes would let user dunders (__del__, __repr__)
    # run later in host code, untraced.
    visit_Import = visit_ImportFrom = visit_ClassDef = visit_With = _not_allowed


@functools.lru_cache(maxsize=2048)
def _compile(source: str, mode: str) -> types.CodeType:
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(source, filename=FILENAME, policy=_SandboxTransformer)
    if result.errors:
        vi, en = ("Biểu thức", "Expression") if mode == "eval" else ("Mã lệnh", "Script")
        reasons = "; ".join(result.errors)
        _refuse(f"{vi} không được phép: {reasons}", f"{en} not allowed: {reasons}")
    return result.code


_PAGE_KB = resource.getpagesize() // 1024


def _rss_kb() -> int:
    """The process's resident memory now (Linux). Not the peak (ru_maxrss): that is a high-water
    mark, so after one refused memory bomb the next run could grow by the old peak plus the limit,
    and a server would let each bomb go further than the last. Elsewhere the peak is all there is."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.wall0, self.cpu0 = time.perf_counter(), time.thread_time()
        self.depth = 0  # script frames on the stack, kept by the tracer
        # The RSS baseline is taken at the first check, 5 ms in: most runs (a gateway condition)
        # end long before and never pay for getrusage().
        self.next_rss_check, self.rss0 = self.wall0 + 0.005, None

    def check(self) -> None:
        if self.depth > MAX_CALL_DEPTH:
            raise _Stop(f"Đệ quy quá sâu (> {MAX_CALL_DEPTH} lớp) / Recursion too deep (> {MAX_CALL_DEPTH})")
        now = time.perf_counter()
        # Thread CPU time never exceeds wall time, so the ~1 µs thread_time() call is only
        # needed once the cheap wall clock has passed the budget.
        if now - self.wall0 > self.seconds and time.thread_time() - self.cpu0 > self.seconds:
            raise _Stop(f"Vượt quá thời gian CPU cho phép ({self.seconds} giây) / "
                        f"CPU time limit exceeded ({self.seconds} s)")
        if now >= self.next_rss_check:  # appending 1 MB strings fills GBs within a CPU second
            self.next_rss_check = now + 0.005
            self.rss0 = self.rss0 or _rss_kb()
            if _rss_kb() - self.rss0 > MAX_RSS_GROWTH_KB:
                raise _Stop("Vượt quá bộ nhớ cho phép / Memory limit exceeded")


class SandboxedEnvironment(BasePythonScriptEngineEnvironment):
    """Drop-in for SpiffWorkflow's TaskDataEnvironment that runs code in the sandbox."""

    def __init__(self, cpu_seconds: float = 1.0, environment_globals: dict[str, Any] | None = None):
        super().__init__(environment_globals)
        self.cpu_seconds = cpu_seconds
        # Helpers live in __builtins__, so task data may shadow them (a form field named `date`).
        self._builtins = _build_builtins(self.globals)

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        code = _compile(expression.strip(), "eval")
        result = self._run(code, {**(external_context or {}), **context})
        if callable(result) or isinstance(result, types.GeneratorType):  # would run later, untraced
            _refuse("Biểu thức phải trả về dữ liệu", "An expression must return data")
        self._check_data(result)
        return result

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        external_context = external_context or {}
        clash = set(external_context).intersection(context)
        if clash:  # the same fail-fast as TaskDataEnvironment.check_for_overwrite
            raise ValueError(f"Dữ liệu trùng tên đã định nghĩa sẵn: {clash} / "
                             f"Task data overwrites predefined name(s): {clash}")
        code = _compile(script, "exec")
        # Run on a copy and write back only on success: a refused script leaves no half result.
        namespace = {**context, **external_context}
        self._run(code, namespace)
        for key, value in list(namespace.items()):
            if (key in external_context or (key.startswith("_") and key not in context)  # _print, _tmp0
                    or callable(value) or isinstance(value, (types.ModuleType, types.GeneratorType))):
                del namespace[key]
        self._check_data(namespace)
        context.clear()
        context.update(namespace)
        return True

    def call_service(self, context, operation_name=None, operation_params=None, task_data=None, **kwargs):
        _refuse("Không hỗ trợ service task", "Service tasks are not supported")

    @staticmethod
    def _check_data(value: Any) -> None:
        # The host serializes task data later, outside any budget: refuse what would explode there.
        if _size(value, MAX_DATA_UNITS) > MAX_DATA_UNITS:
            _refuse("Dữ liệu kết quả quá lớn", "Resulting data too large")

    def _run(self, code: types.CodeType, namespace: dict) -> Any:
        budget = _Budget(self.cpu_seconds)
        namespace["__builtins__"] = {**self._builtins, "_tick_": budget.check}

        def tracer(frame, event, arg):
            # If this function ever raises, CPython switches tracing off for good. So it stops
            # recursion long before a RecursionError could hit it (a script catching that
            # would then run untraced), and raises only on 'line': 'call' also fires when the
            # garbage collector closes a generator, where the exception would be swallowed.
            if frame.f_code.co_filename != FILENAME:
                return None  # host code (guards, builtins) is not traced line by line
            if event == "line":
                budget.check()
            elif event == "call":
                budget.depth += 1
            elif event == "return":
                budget.depth -= 1
            return tracer

        previous = sys.gettrace()  # a debugger or coverage tool may be tracing
        sys.settrace(tracer)
        try:
            with decimal.localcontext() as ctx:
                ctx.Emax, ctx.Emin = MAX_DECIMAL_EXP, -MAX_DECIMAL_EXP
                return eval(code, namespace)  # an exec-mode code object just returns None
        except _Stop as stop:
            raise SandboxError(stop.args[0]) from None
        except Exception as error:
            # A script can chain 10**5 exceptions (`raise ... from e` in a loop); the host would
            # log them all. The script's own error, unchanged otherwise, is what SpiffWorkflow needs.
            error.__cause__ = error.__context__ = None
            raise
        finally:
            sys.settrace(previous)
            namespace.pop("__builtins__", None)


class _ScriptEngine(PythonScriptEngine):
    """SpiffWorkflow 3.2's `call_service` error path refers to an undefined name; report cleanly instead."""

    def call_service(self, task, **kwargs):
        try:
            return self.environment.call_service(task.data, **kwargs)
        except Exception as err:  # noqa: BLE001 - wrapped with the task, as Spiff does for scripts
            from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException

            raise WorkflowTaskException(str(err), task=task, exception=err) from None


def make_script_engine(cpu_seconds: float = 1.0, environment_globals: dict[str, Any] | None = None
                       ) -> PythonScriptEngine:
    """The script engine every workflow (and the DMN tables it calls) runs with.

    `environment_globals` can replace helpers, e.g. a `datetime` that reads the engine's clock.
    """
    return _ScriptEngine(environment=SandboxedEnvironment(cpu_seconds=cpu_seconds,
                                                          environment_globals=environment_globals))
