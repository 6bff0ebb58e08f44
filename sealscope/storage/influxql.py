"""Quoting for InfluxQL, the query language InfluxDB 1.x, 2.x and 3.x all answer."""

from __future__ import annotations

__all__ = ["quote_ident", "quote_literal"]


def _escape(text: str, quote: str) -> str:
    # InfluxQL's scanner reads \\, \n and the escaped quote inside quoted strings
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace(quote, "\\" + quote)


def quote_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier (measurement, field, tag key)."""
    return '"' + _escape(name, '"') + '"'


def quote_literal(value: str) -> str:
    """A single-quoted InfluxQL string literal (tag value)."""
    return "'" + _escape(value, "'") + "'"
