"""``python -m grid.serve``: daphne, with an access log that never shows query strings.

The store's signed URLs carry their credentials in the query (``?expires=…&signature=…``), and
daphne's access log would write them out whole; anyone reading the log could then fetch or
overwrite those objects until the URLs expire. Same arguments as the ``daphne`` command.
"""

from __future__ import annotations

import daphne.cli
from daphne.access import AccessLogGenerator

__all__ = ["RedactingAccessLog"]


class RedactingAccessLog(AccessLogGenerator):
    """Daphne's NCSA-style access log, with every path cut at its ``?``."""

    def __call__(self, protocol, action, details):
        if isinstance(details, dict) and isinstance(details.get("path"), str):
            details = {**details, "path": details["path"].split("?", 1)[0]}
        super().__call__(protocol, action, details)


def main() -> None:
    daphne.cli.AccessLogGenerator = RedactingAccessLog  # the class daphne's CLI instantiates
    daphne.cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
