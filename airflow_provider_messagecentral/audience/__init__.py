"""
Who receives what.

- :mod:`.phone`: parse and normalise numbers (``normalize_numbers``: the one normaliser of a list);
- :mod:`.sources`: numbers from a list, XCom, CSV or text file; rows from a DataFrame or a SQL query;
- :mod:`.rows`: placeholders, cell text and rendering, and what makes a row invalid;
- :mod:`.workbook_build`: an audience into upload workbooks in one pass (suppression, segments, samples, digests);
- :mod:`.workbook_check`: a user's workbook checked (container, headers, every row) and read.
"""
