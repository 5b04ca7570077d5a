"""Incremental bucket snapshots: an index per snapshot, content-addressed blobs shared between
snapshots, and their pruning (with the one retention policy of :mod:`autograph.dr.retention`).
Their cadence is a schedule of :mod:`autograph.dr.scheduler` (:func:`autograph.dr.schedules.
snapshot_schedule`)."""
