"""The validator's dashboard: web pages over the validator's tables (DESIGN.md §8).

A separate ASGI process with the validator's settings (``python -m grid.serve``), sharing the
validator's database with the connector. Pages are Django templates behind Django's login;
jobs in flight are pushed to the browser (Server-Sent Events, :mod:`validator.dashboard.live`);
charts are SVG drawn on the server (:mod:`validator.dashboard.charts`); operators blacklist and
lift miners with CSRF-protected forms, and the connector picks their entries up on its next
reputation reload.
"""
