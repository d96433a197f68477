from __future__ import annotations

import pytest

from airflow_provider_messagecentral.safety.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentInfo,
    analyse,
    encoding,
    segments,
    septets,
)

# The GSM 03.38 default alphabet as published (0x1B, the escape, is not a character).
GSM_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def test_gsm_tables_are_exactly_the_standard_ones():
    assert len(GSM_BASIC_TABLE) == 127
    assert set(GSM_BASIC_TABLE) == GSM7_BASIC
    assert {"\f", "^", "{", "}", "\\", "[", "~", "]", "|", "€"} == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize("ch", ["`", "ç", "á", "í", "ó", "ú", "Ä", "\t", "₹", "\u2019", "\u201c", "😀", "अ"])
def test_characters_outside_or_inside_gsm(ch):
    expected = "GSM-7" if ch in GSM_BASIC_TABLE else "UCS-2"
    assert encoding(f"Hello {ch}") == expected


def test_whole_gsm_alphabet_is_gsm7():
    text = GSM_BASIC_TABLE + "".join(sorted(GSM7_EXTENSION))
    assert encoding(text) == "GSM-7"
    assert septets(text) == 127 + 2 * 10


@pytest.mark.parametrize("ch", ["€", "{", "}", "[", "]", "~", "|", "^", "\\", "\f"])
def test_extension_characters_take_two_septets(ch):
    assert septets(ch) == 2
    assert septets(f"a{ch}b") == 4


def test_septets_rejects_non_gsm_text():
    with pytest.raises(ValueError, match="U\\+20B9"):
        septets("₹100")


@pytest.mark.parametrize(
    ("length", "expected"), [(0, 0), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)]
)
def test_gsm7_segment_boundaries(length, expected):
    assert segments("a" * length) == expected


@pytest.mark.parametrize(("length", "expected"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3)])
def test_ucs2_segment_boundaries(length, expected):
    assert segments("अ" * length) == expected


def test_extension_characters_count_against_the_single_part_limit():
    assert segments("€" * 80) == 1  # 160 septets
    assert segments("€" * 80 + "a") == 2  # 161 septets


def test_escape_pair_is_not_split_across_parts():
    # 152 plain septets, then "€" (ESC + e): the pair would straddle the 153-septet boundary, so the
    # first part carries 152 septets and the escape pair opens the second part.
    text = "a" * 152 + "€" + "a" * 152  # 306 septets: a naive ceil(306 / 153) says 2
    assert septets(text) == 306
    assert segments(text) == 3
    # The same count with the escape away from the boundary fits in 2.
    assert segments("€" + "a" * 304) == 2


def test_emoji_message_counts_surrogate_pairs():
    info = analyse("Happy birthday 🎉")
    assert info == SegmentInfo(encoding="UCS-2", characters=16, units=17, segments=1)
    assert segments("😀" * 35) == 1  # 70 UTF-16 units
    assert segments("😀" * 36) == 2  # 72 units
    # 66 units then an emoji: the surrogate pair must not straddle the 67-unit boundary.
    text = "अ" * 66 + "😀" + "अ" * 66  # 134 units: a naive ceil(134 / 67) says 2
    assert segments(text) == 3


def test_analyse_gsm7():
    assert analyse("Price: 10€ {promo}") == SegmentInfo(encoding="GSM-7", characters=18, units=21, segments=1)
    assert analyse("") == SegmentInfo(encoding="GSM-7", characters=0, units=0, segments=0)


def test_one_non_gsm_character_switches_the_whole_message_to_ucs2():
    text = "a" * 100 + "₹"
    assert analyse(text) == SegmentInfo(encoding="UCS-2", characters=101, units=101, segments=2)
