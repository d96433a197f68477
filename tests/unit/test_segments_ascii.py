"""The ASCII short cut of ``analyse`` counts exactly what the character-by-character rules count."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_messagecentral.safety.segments import (
    GSM7,
    UCS2,
    SegmentInfo,
    analyse,
    encoding,
    segments,
    septets,
    utf16_units,
)


def by_the_rules(text: str) -> SegmentInfo:
    enc = encoding(text)
    units = septets(text) if enc == GSM7 else utf16_units(text)
    return SegmentInfo(encoding=enc, characters=len(text), units=units, segments=segments(text))


@settings(max_examples=2000, deadline=None)
@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=400)
    | st.text(alphabet="ab {}[]^~|\\\f€é", max_size=400)
    | st.text(max_size=200)
)
@example("")
@example("x" * 160)
@example("x" * 161)
@example("{" * 80)
@example("{" * 81)
@example("x" * 152 + "{")
@example("`")
@example("\x00")
def test_analyse_counts_as_the_rules_do(text: str) -> None:
    assert analyse(text) == by_the_rules(text)


def test_both_encodings_are_reached() -> None:
    assert analyse("Hello {name}").encoding == GSM7 and analyse("Hello `name`").encoding == UCS2
