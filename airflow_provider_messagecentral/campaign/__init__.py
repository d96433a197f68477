"""
One campaign's sending (a send task instance).

- :mod:`.keys`: the campaign key of a task instance;
- :mod:`.plan`: the send plan the operators build (units, counts, samples), its XCom summary and stop error;
- :mod:`.run`: the runner (budget, send window, dry-run preview, units through the ledger);
- :mod:`.ledger`: the exactly-once send ledger;
- :mod:`.progress`: per-unit progress lines.
"""
