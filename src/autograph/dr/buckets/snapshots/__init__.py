"""Incremental bucket snapshots: an index per snapshot, content-addressed blobs shared between
snapshots, thinning, and the snapshot loop's schedule."""
