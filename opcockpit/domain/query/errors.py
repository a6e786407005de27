"""The query language's errors: each one renders as one line an operator can act on."""

from __future__ import annotations


class QueryError(Exception):
    """A query that cannot run as written. `column` (1-based) points into `text` when known."""

    def __init__(self, message: str, *, text: str | None = None, column: int | None = None) -> None:
        self.message = " ".join(message.split())
        self.text = text
        self.column = column
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def caret(self) -> list[str]:
        """[the query, a caret under the offending token] when the column is known, else []."""
        if self.text is None or self.column is None or "\n" in self.text:
            return []
        return [self.text, " " * max(self.column - 1, 0) + "^"]


class QuerySyntaxError(QueryError):
    """The text does not parse (message names the column and the offending token)."""


class UnknownNameError(QueryError):
    """An unknown dataset or field (message lists the valid ones)."""


class MissingParameterError(QueryError):
    """A `:name` parameter has no value."""


class QueryTimeout(QueryError):
    """The evaluation ran past its time budget and was stopped (nothing changed)."""
