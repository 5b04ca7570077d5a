"""Restore test of a database dump: restored into a scratch database, every table's row count
compared with the counts taken while the dump ran (its manifest)."""

from __future__ import annotations

from autograph.dr.catalog import Catalog
from autograph.dr.models import BackupEntry
from autograph.dr.postgres.restore import check_counts, load_dump, toc_entries
from autograph.dr.postgres.server import PgServer
from autograph.dr.postgres.verify import check_toc
from autograph.dr.proof import scratch


def database_size(server: PgServer) -> int:
    """Bytes the live database takes (what its restored copy will take, roughly)."""
    with server.connect() as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (server.live_database,)).fetchone()
    return int(row[0])


def prove_dump(server: PgServer, catalog: Catalog, entry: BackupEntry, stamp: str) -> str:
    """Restore ``entry`` (the local copy, else the S3 copy) into
    ``<db>__proof_scratch_<stamp>``, compare row counts, drop it; return what was compared.

    Raises IntegrityError (no intact copy, counts differ), OperationFailed, DependencyDown.
    """
    fetched = catalog.fetch(entry.name)
    toc = toc_entries(server, fetched.path)
    check_toc(server, fetched.path, fetched.entry, toc)
    name = scratch.database_name(server.live_database, stamp)
    try:
        counts = load_dump(server, fetched.path, name, toc, jobs=1)
        tables = check_counts(entry.row_counts, counts)
    finally:
        server.drop_database(name)
    copy = "local copy" if fetched.location == "local" else "S3 copy"
    return (f"{entry.name} ({copy}) restored into a scratch database: {tables} tables, "
            f"{sum(counts.values())} rows, row counts equal the manifest's")
