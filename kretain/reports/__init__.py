"""Reports over the state store; each returns kretain.output.Table(s) for output.render.

    status_report(store, *, runs=1) -> list[Table]                       status.py
    summary_report(store, *, states=None, rule_names=None) -> Table      summary.py
    export_entries(store, *, states=None, policies=None, columns="seed") -> Table   export.py
    export_owners(store, *, states=None, policies=None) -> Table         export.py
    run_query(db_path, sql, params=(), *, title=None) -> Table           query.py
    render_report(db_path, *, fmt, policy, fallback_as_of, ...) -> (text, note)   report.py
    write_report(db_path, out, *, fmt, policy, fallback_as_of, ...) -> note       report.py
    build_report(store, *, policy, fallback_as_of, ...) -> ReportData             report.py

All are async. ``states=None`` means IN_POLICY_STATES everywhere. Large results (exports,
queries) stream from a read-only cursor; summary and status are small lists.
"""

from kretain.reports.export import SEED_COLUMNS, export_entries, export_owners
from kretain.reports.query import QueryError, ReadOnlyQueryError, ReportError, run_query
from kretain.reports.report import (
    build_report,
    default_report_path,
    render_report,
    write_report,
)
from kretain.reports.status import status_report
from kretain.reports.summary import (
    ALL_STATES,
    IN_POLICY_STATES,
    PENDING_STATES,
    summary_report,
)

__all__ = [
    "ALL_STATES",
    "IN_POLICY_STATES",
    "PENDING_STATES",
    "SEED_COLUMNS",
    "QueryError",
    "ReadOnlyQueryError",
    "ReportError",
    "build_report",
    "default_report_path",
    "export_entries",
    "export_owners",
    "render_report",
    "run_query",
    "status_report",
    "summary_report",
    "write_report",
]
