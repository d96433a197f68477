"""
The hook's parts, lowest layer first: ``choices`` (flow and message types), ``window`` (the send window value),
``store_url`` and ``settings`` (a connection's fields and where its reports live), ``request`` (building a
send), ``retries``, ``transport`` (session, one HTTP request, key redaction), ``error_codes`` (known
``responseCode`` values and their named errors), ``responses`` (reading answers), ``tokens`` and
``ratelimit``; and the reads beyond MessageCentral's API docs: ``pulled`` and ``report_query`` (delivery
reports from ``reports/getDetailedReports``) and ``balance`` (``wallet/credits/balance``). Nothing here
imports the hook or anything above it.
"""
