"""``cards.text.plain`` skips the HTML parser for text with no tag and no character reference: the
answer must be the parser's own, for any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cards.text import _MARKDOWN, RECORD_TEXT_MAX, _TextOnly, plain


def _by_the_parser(text: str, max_length: int = RECORD_TEXT_MAX) -> str:
    """``plain`` as it was: every text through the parser."""
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    flat = " ".join("".join(parser.parts).split())
    if len(flat) > max_length:
        flat = flat[: max_length - 1].rstrip() + "…"
    return _MARKDOWN.sub(r"\\\1", flat)


_RECORD_TEXTS = [
    "",
    "tacrolimus 1 MG Oral Capsule [Prograf]",
    "  Fluconazole\t150 mg\r\n tablet  ",
    "a_b*c`d#e|f~g\\h",
    "Lupus &amp; nephritis",
    "<b>Prednisone</b> 5 mg",
    "x < y > z",
    "AT&T",
    "&#39;quoted&#39;",
    "µg/L — ×10³/µL",
    "\u00a0non-breaking\u2003spaces\u2028line",
    "w" * 300,
]


def test_record_texts_read_as_the_parser_reads_them() -> None:
    for text in _RECORD_TEXTS:
        for limit in (RECORD_TEXT_MAX, 10):
            assert plain(text, limit) == _by_the_parser(text, limit), text


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200), st.integers(min_value=2, max_value=150))
def test_any_text_reads_as_the_parser_reads_it(text: str, limit: int) -> None:
    assert plain(text, limit) == _by_the_parser(text, limit)
