"""The one evaluator of user formulas: case-file temperature and heat formulas, and the
formula string of ``ReducedModel.solve(temperature="...")``.

A formula is a numpy expression of named arrays (``x, y, z`` [m], ``t`` [s], named
parameters). It is parsed with :mod:`ast` and its syntax tree is checked *before*
anything is compiled: only these nodes are allowed

- numbers (every number becomes a float: ``9**9**10`` overflows at once instead of
  building an endless Python integer),
- the allowed names (the caller's variables and the functions and constants of
  :data:`FUNCTIONS` and :data:`CONSTANTS`),
- unary ``+ - not``, binary ``+ - * / // % **``, comparisons ``== != < <= > >=``,
  ``and`` / ``or``, the conditional ``a if c else b``,
- calls of an allowed function by its bare name with positional arguments.

Parts without variables are evaluated once when the formula is checked: an overflow
(``0 * 9**9**10``) or a non-finite constant is an error before any evaluation.
Anything else (attribute access, subscripts, strings, comprehensions, lambdas,
starred or keyword arguments, dunder names, bit operations, ...) is refused with a
:class:`~rom.parallel.UserError` that names the key and the construct. Only the
checked (and float-converted) tree is compiled, and it is evaluated without builtins.
Nothing a formula can express allocates more than its operands' size or loops.
"""
from __future__ import annotations

import ast
import functools
from collections.abc import Iterable

import numpy as np

from .parallel import UserError

__all__ = ["CONSTANTS", "FUNCTIONS", "MAX_LENGTH", "SAFE", "Expression", "check_formula"]

#: numpy functions a formula may call (by bare name)
FUNCTIONS = ("sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh", "arctan2", "hypot",
             "minimum", "maximum", "where", "clip")
#: numpy constants a formula may use
CONSTANTS = ("pi",)
#: the namespace of every formula besides its variables
SAFE = {name: getattr(np, name) for name in (*FUNCTIONS, *CONSTANTS)}
#: longest formula text (characters): a formula is one line of a case file
MAX_LENGTH = 2000

_UNARY = (ast.UAdd, ast.USub, ast.Not)
_BINARY = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_COMPARE = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_BOOL = (ast.And, ast.Or)

#: what the error message calls a refused node
_NAMES = {ast.Attribute: "attribute access is", ast.Subscript: "subscripts are",
          ast.ListComp: "comprehensions are", ast.SetComp: "comprehensions are",
          ast.DictComp: "comprehensions are", ast.GeneratorExp: "comprehensions are",
          ast.Lambda: "lambdas are", ast.Starred: "starred arguments are",
          ast.List: "lists are", ast.Tuple: "tuples are", ast.Set: "sets are",
          ast.Dict: "mappings are", ast.NamedExpr: "assignments (:=) are",
          ast.JoinedStr: "strings are", ast.Slice: "slices are"}


class _Refused(Exception):
    """A construct the formula language does not have (message: what)."""


def check_formula(text: str, names: Iterable[str] | None, where: str) -> ast.Expression:
    """Parse and check a formula; return its syntax tree with every number a float.

    Parameters
    ----------
    text : the expression, e.g. ``"T_gas - 200 * z / 0.05"``
    names : variable names it may use (coordinates, time, parameters); None: any name
        (the language is checked, the names where they are known)
    where : the case-file key (or ``"temperature"``), for error messages

    Raises
    ------
    UserError : not a string, too long, syntax error, unknown name, or a construct
        outside the formula language; the message names ``where`` and the formula.
    """
    if not isinstance(text, str):
        raise UserError(f"{where}: expected a formula string, got {type(text).__name__}")
    shown = _short(text)
    if len(text) > MAX_LENGTH:
        raise UserError(f"{where}: formula {shown} is {len(text)} characters long "
                        f"(at most {MAX_LENGTH})")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise UserError(f"{where}: {exc.msg} in formula {shown}") from None
    except ValueError as exc:                   # e.g. a null byte
        raise UserError(f"{where}: formula {shown}: {exc}") from None
    except (RecursionError, MemoryError):
        raise UserError(f"{where}: formula {shown} is nested too deeply") from None
    variables = "variables" if names is None else ", ".join(names) or "no variables"
    try:
        _check(tree.body)
    except _Refused as exc:
        raise UserError(f"{where}: formula {shown}: {exc} not allowed (only numbers, "
                        f"{variables}, arithmetic, comparisons and the functions "
                        f"{', '.join(FUNCTIONS)})") from None
    except RecursionError:
        raise UserError(f"{where}: formula {shown} is nested too deeply") from None
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names = tuple(used - set(SAFE)) if names is None else tuple(names)
    unknown = sorted(used - set(names) - set(SAFE))
    if unknown:
        raise UserError(f"{where}: formula {shown} uses unknown name(s) "
                        f"{', '.join(unknown)} (known: {', '.join(names) or 'none'}; "
                        f"functions: {', '.join(SAFE)})")
    for node in ast.walk(tree):                 # iterative: any depth _check accepted
        if isinstance(node, ast.Constant):
            node.value = float(node.value)
    _check_constant_parts(tree, text.strip(), where, shown)
    return tree


def _check_constant_parts(tree: ast.Expression, source: str, where: str, shown: str) -> None:
    """Evaluate the largest parts of the formula without variables (``0 * 9**9**10``,
    ``1 / 0``, ``exp(1000)``) once, here: an overflow or a non-finite value there is an
    error of the formula whatever the variables (floats only: each part takes O(1))."""
    nodes = list(ast.walk(tree))                # breadth first: parents before children
    varying: dict[int, bool] = {}
    for node in reversed(nodes):                # children before parents
        varying[id(node)] = (isinstance(node, ast.Name) and node.id not in SAFE) or any(
            varying[id(c)] for c in ast.iter_child_nodes(node))
    todo = [tree.body]
    while todo:  # loop over the parts, largest first
        node = todo.pop()
        if varying[id(node)]:
            todo.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.expr))
            continue
        if isinstance(node, (ast.Constant, ast.Name)):
            continue
        part = ast.fix_missing_locations(ast.Expression(body=node))
        text = _short(ast.get_source_segment(source, node) or ast.unparse(node))
        try:
            with np.errstate(all="ignore"):
                val = eval(compile(part, "<constant>", "eval"),  # noqa: S307 - checked tree
                           {"__builtins__": {}}, dict(SAFE))
            finite = bool(np.all(np.isfinite(np.asarray(val, float))))
        except Exception as exc:  # noqa: BLE001 - the user's constants
            raise UserError(f"{where}: formula {shown}: its constant part {text} fails: "
                            f"{type(exc).__name__}: {exc}") from None
        if not finite:
            raise UserError(f"{where}: formula {shown}: its constant part {text} is not "
                            f"finite ({val})")


def _check(node: ast.AST) -> None:
    """Raise :class:`_Refused` for the first node outside the formula language (names
    are checked against the allowed ones by the caller)."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            kind = "strings are" if isinstance(node.value, (str, bytes)) else \
                f"the constant {_short(repr(node.value))} is"
            raise _Refused(kind)
        return
    if isinstance(node, ast.Name):
        if node.id.startswith("__"):
            raise _Refused(f"the name {node.id!r} is")
        if node.id in FUNCTIONS:
            raise _Refused(f"the function {node.id!r} used as a value is")
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
        return _check(node.operand)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINARY):
        _check(node.left)
        return _check(node.right)
    if isinstance(node, ast.Compare):
        if not all(isinstance(op, _COMPARE) for op in node.ops):
            raise _Refused("identity and membership tests (is, in) are")
        for child in (node.left, *node.comparators):
            _check(child)
        return
    if isinstance(node, ast.BoolOp) and isinstance(node.op, _BOOL):
        for child in node.values:
            _check(child)
        return
    if isinstance(node, ast.IfExp):
        for child in (node.test, node.body, node.orelse):
            _check(child)
        return
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise _Refused("calling anything but the functions by their bare name is")
        if node.keywords:
            raise _Refused("keyword arguments are")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise _Refused("starred arguments are")
            _check(arg)
        return
    what = _NAMES.get(type(node))
    if what is None:
        op = getattr(node, "op", None)
        what = f"the {type(op or node).__name__} {'operator' if op else 'expression'} is"
    raise _Refused(what)


def _short(text: str) -> str:
    s = repr(text)
    return s if len(s) <= 80 else s[:77] + "..."


class Expression:
    """A checked formula, compiled once, evaluated on arrays or scalars.

    Parameters
    ----------
    text, names, where : as :func:`check_formula`

    Attributes
    ----------
    used : the names the formula uses (variables and functions)
    """

    def __init__(self, text: str, names: Iterable[str], where: str):
        self.text, self.where, self.names = text, where, tuple(names)
        tree = check_formula(text, self.names, where)
        self.used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        try:
            self.code = compile(tree, f"<{where}>", "eval")
        except (RecursionError, MemoryError):
            raise UserError(f"{where}: formula {_short(text)} is nested too deeply") from None

    @classmethod
    @functools.lru_cache(maxsize=64)
    def cached(cls, text: str, names: tuple[str, ...], where: str) -> Expression:
        """The same formula checked and compiled once (e.g. evaluated at every time step)."""
        return cls(text, names, where)

    def evaluate(self, **values) -> np.ndarray | float:
        """The value for the variables ``values`` (arrays or scalars; floating-point
        warnings silenced). Raises :class:`UserError` naming the formula when numpy or
        Python does (e.g. ``OverflowError`` of a float power, shapes that do not broadcast).
        """
        try:
            with np.errstate(all="ignore"):
                return eval(self.code, {"__builtins__": {}}, {**SAFE, **values})  # noqa: S307
        except Exception as exc:  # noqa: BLE001 - any error in the user's formula
            raise UserError(f"{self.where}: formula {_short(self.text)}: "
                            f"{type(exc).__name__}: {exc}") from None
