"""
Campaign safety guards of the send operators: send windows, suppression, segments and cost, dry-run previews.

- :mod:`.send_window`: quiet hours (``send_window``, ``on_outside_window``) and the clock tests can replace;
- :mod:`.suppression`: numbers never to text (a list, a file, SQL, the store's suppression table);
- :mod:`.cost`: segments per message, ``max_segments``, ``price_per_segment`` and ``max_cost``;
- :mod:`.preview`: the dry-run switch and the preview a dry run logs and returns.
"""

from __future__ import annotations
