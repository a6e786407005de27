"""The query grammar (lark, LALR) and the text -> AST parser.

    runs status:error since:-6h | group by provider | count

A query is a dataset name, an optional filter expression and `|` stages. Filters: `field:value`
(loose match), `= != < > <= >=`, `~` (regex), `field in (a, b)`, `!`/`not`, `and`/`or` (juxtaposed
terms are and-ed), parentheses, free text (bare words or "quoted strings"). Values: bare words,
quoted strings, absolute times (`2026-12-01T14:00`), relative times (`-2h`), `:params`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from opcockpit.domain.query.ast import (
    And,
    Compare,
    Count,
    CountByTime,
    Expr,
    GroupBy,
    InList,
    Limit,
    Literal,
    Not,
    Or,
    Query,
    Sort,
    SortKey,
    Stage,
    Text,
)
from opcockpit.domain.query.errors import QuerySyntaxError
from opcockpit.domain.timeutil import parse_duration

GRAMMAR = r"""
query: WORD expr? stage*

?expr: or_
?or_: and_ (_OR and_)*
?and_: unary (_AND? unary)*
?unary: (_NOT | _BANG) unary  -> not_
      | "(" expr ")"
      | WORD OP value         -> compare
      | WORD _IN "(" value ("," value)* ")" -> inlist
      | (WORD | STRING | TIME) -> text

value: WORD | STRING | TIME | PARAM

stage: "|" _SORT sort_key ("," sort_key)*          -> sort
     | "|" _LIMIT WORD                               -> limit
     | "|" _GROUP _BY WORD ("," WORD)*               -> group
     | "|" _COUNT _BY _TIME WORD                     -> count_time
     | "|" _COUNT _BY WORD ("," WORD)*               -> count_by
     | "|" _COUNT                                    -> count
sort_key: WORD (DESC | ASC)?

_OR: "or"i
_AND: "and"i
_NOT: "not"i
_BANG: "!"
_IN: "in"i
_SORT: "sort"i
_LIMIT: "limit"i
_GROUP: "group"i
_BY: "by"i
_COUNT: "count"i
_TIME: "time"i
DESC: "desc"i
ASC: "asc"i

OP.3: "!=" | "<=" | ">=" | "=" | "<" | ">" | ":" | "~"
TIME.2: /\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?(?![^\s()|,])/
PARAM: /:[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/
WORD: /[^\s()|,:"'=!<>~]+/

%ignore /\s+/
"""

# What an operator calls the grammar's terminals in "expected ..." lists.
_NAMES = {
    "WORD": "a word", "STRING": "a quoted string", "TIME": "a time", "PARAM": "a :param",
    "OP": "an operator (: = != < > <= >= ~)", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "VBAR": "'|'", "_OR": "'or'", "_AND": "'and'", "_NOT": "'not'", "_BANG": "'!'", "_IN": "'in'",
    "_SORT": "'sort'", "_LIMIT": "'limit'", "_GROUP": "'group'", "_BY": "'by'",
    "_COUNT": "'count'", "_TIME": "'time'",
    "DESC": "'desc'", "ASC": "'asc'", "$END": "the end",
}  # fmt: skip


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, start="query", parser="lalr", lexer="contextual", propagate_positions=False)


def _lit(tok: Token) -> Literal:
    col = tok.column or 0
    if tok.type == "STRING":
        return Literal("string", _unquote(str(tok)[1:-1]), col)
    if tok.type == "TIME":
        return Literal("time", str(tok), col)
    if tok.type == "PARAM":
        return Literal("param", str(tok)[1:], col)
    return Literal("word", str(tok), col)


def _unquote(body: str) -> str:
    """Only \\" \\' and \\\\ are escapes; any other backslash stays (regexes keep their \\d)."""
    return re.sub(r"""\\(["'\\])""", r"\1", body)


class _Build(Transformer):
    @v_args(inline=True)
    def value(self, tok: Token) -> Literal:
        return _lit(tok)

    @v_args(inline=True)
    def text(self, tok: Token) -> Text:
        return Text(self.value(tok))

    @v_args(inline=True)
    def compare(self, name: Token, op: Token, value: Literal) -> Compare:
        return Compare(str(name), str(op), value, name.column or 0)

    def inlist(self, items: list) -> InList:
        name = items[0]
        return InList(str(name), tuple(items[1:]), name.column or 0)

    @v_args(inline=True)
    def not_(self, expr: Expr) -> Not:
        return Not(expr)

    def and_(self, items: list[Expr]) -> And:
        return And(tuple(items))

    def or_(self, items: list[Expr]) -> Or:
        return Or(tuple(items))

    def sort_key(self, items: list[Token]) -> SortKey:
        desc = len(items) > 1 and items[1].type == "DESC"
        return SortKey(str(items[0]), desc, items[0].column or 0)

    def sort(self, items: list[SortKey]) -> Sort:
        return Sort(tuple(items))

    @v_args(inline=True)
    def limit(self, tok: Token) -> Limit:
        if not str(tok).isdigit():
            raise QuerySyntaxError(
                f"syntax error at column {tok.column}: limit takes a whole number, not {str(tok)!r}",
                column=tok.column,
            )
        return Limit(int(str(tok)))

    def group(self, items: list[Token]) -> GroupBy:
        return GroupBy(tuple(str(t) for t in items), tuple(t.column or 0 for t in items))

    def count_by(self, items: list[Token]) -> Count:
        return Count(tuple(str(t) for t in items), tuple(t.column or 0 for t in items))

    def count(self, _items: list) -> Count:
        return Count()

    @v_args(inline=True)
    def count_time(self, tok: Token) -> CountByTime:
        try:
            return CountByTime(parse_duration(str(tok)).total_seconds())
        except ValueError:
            raise QuerySyntaxError(
                f"syntax error at column {tok.column}: bucket {str(tok)!r} is not a duration (e.g. 5m, 1h)",
                column=tok.column,
            ) from None

    def query(self, items: list) -> Query:
        ds: Token = items[0]
        rest = items[1:]
        where = rest[0] if rest and not isinstance(rest[0], Stage) else None
        stages = tuple(x for x in rest if isinstance(x, Stage))
        return Query(str(ds), where, stages, dataset_column=ds.column or 1)


def _expected(exc: UnexpectedInput) -> str:
    names = sorted({_NAMES.get(t, t.lower()) for t in (getattr(exc, "expected", None) or ())})
    return f" (expected {', '.join(names[:6])}{', ...' if len(names) > 6 else ''})" if names else ""


def parse(text: str) -> Query:
    """Parse `text` into a Query; QuerySyntaxError names the column and the offending token."""
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    if not text.strip():
        raise QuerySyntaxError(
            "empty query: start with a dataset, e.g. `runs status:error`", text=text, column=1
        )
    try:
        tree = _parser().parse(text)
        query = _Build().transform(tree)
    except VisitError as exc:
        inner = exc.orig_exc
        if isinstance(inner, QuerySyntaxError):
            raise QuerySyntaxError(inner.message, text=text, column=inner.column) from None
        raise
    except UnexpectedEOF as exc:
        col = len(text) + 1
        raise QuerySyntaxError(
            f"syntax error at column {col}: the query ends too early{_expected(exc)}", text=text, column=col
        ) from None
    except UnexpectedToken as exc:
        tok = exc.token
        col = len(text) + 1 if tok.type == "$END" or not isinstance(tok.column, int) else tok.column
        what = "the end" if tok.type == "$END" else repr(str(tok))
        raise QuerySyntaxError(
            f"syntax error at column {col}: unexpected {what}{_expected(exc)}", text=text, column=col
        ) from None
    except UnexpectedCharacters as exc:
        col = exc.column
        ch = text[col - 1] if 0 < col <= len(text) else ""
        raise QuerySyntaxError(
            f"syntax error at column {col}: unexpected {ch!r}{_expected(exc)}", text=text, column=col
        ) from None
    return Query(query.dataset, query.where, query.stages, text, query.dataset_column)
