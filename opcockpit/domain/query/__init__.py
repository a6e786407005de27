"""The Explore query language: grammar (lark) -> AST -> typed plan -> evaluation over rows.

from opcockpit.domain.query import parse, compile_query, run_plan
plan = compile_query(parse("runs status:error since:-6h | group by provider | count"), now=now)
result = run_plan(plan, rows)
"""

from opcockpit.domain.query.ast import Query
from opcockpit.domain.query.catalog import DATASETS, Dataset, Field, dataset_names
from opcockpit.domain.query.errors import (
    MissingParameterError,
    QueryError,
    QuerySyntaxError,
    QueryTimeout,
    UnknownNameError,
)
from opcockpit.domain.query.evaluate import (
    DEFAULT_CAP,
    FACET_TOP,
    CountPush,
    Plan,
    Result,
    bind,
    compile_query,
    count_pushdown,
    run_counted,
    run_plan,
)
from opcockpit.domain.query.filter import AnyText, Atom, Bool, Filter


def parse(text: str) -> Query:
    """Query text -> AST (grammar.parse). lark and the parser load on the first parse, not when
    the package is imported: the ports and the snapshot path import the query types only."""
    from opcockpit.domain.query.grammar import parse as parse_text

    return parse_text(text)


__all__ = [
    "DATASETS",
    "DEFAULT_CAP",
    "FACET_TOP",
    "AnyText",
    "Atom",
    "Bool",
    "CountPush",
    "Dataset",
    "Field",
    "Filter",
    "MissingParameterError",
    "Plan",
    "Query",
    "QueryError",
    "QuerySyntaxError",
    "QueryTimeout",
    "Result",
    "UnknownNameError",
    "bind",
    "compile_query",
    "count_pushdown",
    "dataset_names",
    "parse",
    "run_counted",
    "run_plan",
]
