"""The query AST: what the parser produces and the evaluator consumes (frozen, comparable)."""

from __future__ import annotations

from dataclasses import dataclass, field

# A literal as written: kind is "word" (bare), "string" (quoted), "time" (absolute timestamp)
# or "param" (`:name`, bound before evaluation).


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str
    text: str
    column: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    """`field OP value`; OP is one of : = != < > <= >= ~ (`:` is the loose match)."""

    field: str
    op: str
    value: Literal
    column: int = 0


@dataclass(frozen=True, slots=True)
class InList:
    field: str
    values: tuple[Literal, ...]
    column: int = 0


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: a case-insensitive substring of any text field."""

    value: Literal


@dataclass(frozen=True, slots=True)
class Not:
    expr: Expr


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


Expr = Compare | InList | Text | Not | And | Or


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    desc: bool = False
    column: int = 0


@dataclass(frozen=True, slots=True)
class Sort:
    keys: tuple[SortKey, ...]


@dataclass(frozen=True, slots=True)
class Limit:
    n: int


@dataclass(frozen=True, slots=True)
class GroupBy:
    fields: tuple[str, ...]
    columns: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Count:
    """`| count` (after `group by`: per group), `| count by f` (= group by f | count)."""

    by: tuple[str, ...] = ()
    columns: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CountByTime:
    """`| count by time 5m`: rows per bucket of the dataset's time field."""

    bucket_s: float


Stage = Sort | Limit | GroupBy | Count | CountByTime


@dataclass(frozen=True, slots=True)
class Query:
    dataset: str
    where: Expr | None = None
    stages: tuple[Stage, ...] = field(default=())
    text: str = ""
    dataset_column: int = 1

    def params(self) -> list[str]:
        """The `:name` parameters the query uses, in order of first use."""
        out: dict[str, None] = {}

        def walk(e: Expr | None) -> None:
            if e is None:
                return
            if isinstance(e, Compare | Text):
                if e.value.kind == "param":
                    out.setdefault(e.value.text, None)
            elif isinstance(e, InList):
                for v in e.values:
                    if v.kind == "param":
                        out.setdefault(v.text, None)
            elif isinstance(e, Not):
                walk(e.expr)
            else:
                for item in e.items:
                    walk(item)

        walk(self.where)
        return list(out)
