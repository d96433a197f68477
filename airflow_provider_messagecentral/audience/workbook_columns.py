"""
Rows of a given workbook taken as columns: the clean rows of a workbook that is uploaded as given.

A workbook sent as given (:mod:`.workbook_given`) is checked and recorded (recipients, digest, segments), not
written. Its rows come in blocks; a block whose every row :class:`~.workbook_check.RowCheck` would pass and the
builder (:class:`~.workbook_build.AudienceBuilder`) would accept unchanged, as one part's next rows of one
segment each, is taken at once, a column at a time: the same number patterns (one ``fullmatch`` per number),
the same digest lines, one count of the segments. Anything else in a block (a blank, a number written
otherwise, a duplicate, a long or non-GSM text...) sends the whole block through the row-by-row checks, which
name what is wrong: no verdict is made here, only "each row is as simple as that".
"""

from __future__ import annotations

import itertools
from operator import itemgetter
from typing import Any

from airflow_provider_messagecentral.audience.phone import read_nationals
from airflow_provider_messagecentral.audience.rows import EXCEL_MAX_CELL_CHARS
from airflow_provider_messagecentral.audience.workbook_build import AudienceBuilder
from airflow_provider_messagecentral.audience.workbook_check import RowCheck
from airflow_provider_messagecentral.safety.preview import SAMPLES
from airflow_provider_messagecentral.safety.segments import GSM7, GSM7_SINGLE_LIMIT, SegmentInfo, plain_gsm7

#: Rows read before blocks are taken as columns (the samples come from the rows one by one), and per block.
FIRST_ROWS = 5
BLOCK_ROWS = 16_384


def take_block(
    check: RowCheck, builder: AudienceBuilder, raws: list[list[Any]], source_at: list[int], codes: set[str]
) -> bool:
    """
    Check and add the rows ``raws`` (as calamine read them) at once when each is a clean row written as the
    build would write it, under the one dialling code of ``codes`` (added to it); ``False`` when nothing was
    done (read them one by one).

    :param source_at: the index in a row of each of the builder's source columns.
    :param codes: the dialling codes of the rows before (a workbook sent as given has one).
    """
    widths = set(map(len, raws))
    if builder.position == 0 or check.problems or len(widths) != 1:
        return False
    if max([check.number.index, *source_at]) >= min(widths):
        return False
    number = list(map(itemgetter(check.number.index), raws))
    sources = [list(map(itemgetter(index), raws)) for index in source_at]
    if any(set(map(type, column)) != {str} for column in (number, *sources)):
        return False  # not every value is text
    if not all(all(map(str.strip, column)) for column in sources):
        return False  # a blank value
    read = read_nationals(number, builder.default_country)
    if read is None:
        return False
    code, nationals = read
    if not codes.issubset({code}):
        return False
    msisdns = list(map(code.__add__, nationals))
    keys = set(map(int, msisdns))
    if not check.can_take(len(raws), keys) or not add_columns(builder, [msisdns, *sources], code, keys):
        return False
    check.take(len(raws), keys)
    codes.add(code)
    return True


def add_columns(builder: AudienceBuilder, columns: list[list[str]], code: str, keys: set[int]) -> bool:
    """
    ``builder.add_cells`` of the next rows, given as columns (msisdns under ``code``, then one column per
    source, none blank), when each would be accepted and recorded unchanged in the part being recorded, in
    one segment of GSM-7; ``False`` (nothing added) otherwise.

    :param keys: the rows' numbers as ints, one per row.
    """
    rows = len(columns[0])
    index = builder.accepted // builder.rows_per_file + 1
    longest = [max(map(len, column)) for column in columns]
    if (
        builder.writer.writes
        or builder.problems
        or (builder.accepted + rows - 1) // builder.rows_per_file + 1 != index
        or not builder.seen.isdisjoint(keys)
        or max(longest) > EXCEL_MAX_CELL_CHARS
        or (
            builder.tally is not None
            and (len(builder.samples) < SAMPLES or not _one_segment(builder, columns, longest))
        )
    ):
        return False
    lines = builder.writer.encoded_columns(columns)
    if lines is None:
        return False
    builder.flush()  # rows queued for the suppression lookup go first
    if builder.suppressed is not None and builder.suppressed(columns[0]):
        return False  # the rows one by one leave them out
    builder.writer.write_lines(columns[0], lines, index, (index - 1) * builder.rows_per_file + 1)
    builder.position += rows
    builder.accepted += rows
    builder.seen.update(keys)
    builder.countries[code] = builder.countries.get(code, 0) + rows
    if builder.tally is not None:
        # what a count reads of each text: one segment of GSM-7 (the texts' lengths differ and are not kept)
        builder.tally.count(SegmentInfo(GSM7, characters=0, units=0, segments=1), recipients=rows)
    return True


def _one_segment(builder: AudienceBuilder, columns: list[list[str]], longest: list[int]) -> bool:
    """
    Every row's text is plain GSM-7 of at most one part: the template's own characters and every value
    used are plain GSM-7 ASCII (one septet each), and the template's length plus each used value's longest
    length (``longest``, per column) times its uses fits one part.
    """
    empty = [""] * len(columns)
    fixed = builder.render(*empty)
    if not plain_gsm7(fixed):
        return False
    bound = len(fixed)
    used = []
    for position, column in enumerate(columns):
        uses = len(builder.render(*empty[:position], "x", *empty[position + 1 :])) - len(fixed)
        if uses:
            used.append(column)
            bound += uses * longest[position]
    return 0 < bound <= GSM7_SINGLE_LIMIT and plain_gsm7("\n".join(itertools.chain.from_iterable(used)))
