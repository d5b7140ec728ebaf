"""kretain: carry out a Kaltura media retention policy, resumably."""

import logging as _logging
import sys as _sys

import structlog as _structlog

__version__ = "0.1.0"

# Quiet until a program sets logging up (the CLI does, with kretain.log.configure_logging):
# the workers log a line per entry moved, which a script embedding kretain must not get on
# stdout by default.
if not _structlog.is_configured():
    _structlog.configure(
        wrapper_class=_structlog.make_filtering_bound_logger(_logging.WARNING),
        logger_factory=_structlog.PrintLoggerFactory(file=_sys.stderr),
    )
