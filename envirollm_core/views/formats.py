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
