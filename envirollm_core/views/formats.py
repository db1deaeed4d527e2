"""How pages show text and numbers that are not theirs: punctuation escaped, figures as they are."""

from __future__ import annotations

import re

import polars as pl

from envirollm_core.figures import APP_FLOAT_FORMAT, APP_INTEGER_FORMAT


_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\\[-`{-~])")


def plain(text: str) -> str:
    """Text with every ASCII punctuation mark backslash-escaped, so Streamlit's markdown shows it as typed.

    For messages that quote a server or a file (`st.error`, `st.info`): a model name or an error from
    a server is not ours to render as links, emphasis or HTML."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def plain_formats(frame: pl.DataFrame) -> dict[str, str]:
    """Column formats showing each number of `frame` as it is, for a frame already rounded by the one rule
    (`figures.round_frame`): Streamlit's default would cut 0.000583 to 0.0006 and add thousands separators."""
    return {name: APP_FLOAT_FORMAT if dtype.is_float() else APP_INTEGER_FORMAT
            for name, dtype in frame.schema.items() if dtype.is_numeric()}


def text_table(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every cell as the text a person reads, for `st.table` (a plain HTML table, which a browser
    draws for a fraction of what a data grid costs): figures as they are (already rounded by the one rule; no
    binary noise, no exponent below 10^15), times to the minute, nothing for a missing value. Only for small
    tables nobody needs to sort."""
    return pl.DataFrame([_as_text(frame[name]) for name in frame.columns])


def _as_text(column: pl.Series) -> pl.Series:
    dtype = column.dtype
    if dtype.is_float():
        text = pl.Series(column.name, [None if value is None else f"{value:.15g}" for value in column], pl.String)
    elif dtype == pl.Datetime:
        text = column.dt.strftime("%Y-%m-%d %H:%M")
    elif dtype == pl.Boolean:
        text = column.replace_strict({True: "yes", False: "no"}, return_dtype=pl.String)
    else:
        text = column.cast(pl.String)
    return text.fill_null("")
