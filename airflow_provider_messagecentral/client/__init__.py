"""
The hook's parts, lowest layer first: ``choices`` (flow and message types), ``window`` (the send window value),
``store_url`` and ``settings`` (a connection's fields and where its reports live), ``request`` (building a
send), ``retries``, ``transport`` (session, one HTTP request, key redaction), ``responses`` (reading answers),
``tokens`` and ``ratelimit``. Nothing here imports the hook or anything above it.
"""
