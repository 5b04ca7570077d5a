"""The off-site tier's moving parts (the store itself is :mod:`autograph.dr.storage.offsite`).

Public API, stable for the recovery kit and the ``machine`` scenario:

- :mod:`.ship`: ``backlog(catalog)`` and ``ship_backlog(catalog) -> ShipReport``;
  ``Catalog.ship_offsite(manifest)`` copies one committed backup (artifact, then manifest).
- :mod:`.wal`: ``WalShipper(settings).store(folder)`` (the off-site store of one WAL folder,
  ``wal/<system identifier>``), ``chain_check(store, folder, deep=)`` -> ``ChainReport``,
  ``fetch_wal(store, folder, target)`` -> ``FetchReport`` (decrypted, in order, stops at the
  first gap or damaged segment and says where), ``SegmentCloser``.
- :mod:`.shipper`: the stack component (``python -m autograph.dr.offsite.shipper``),
  ``sync_backlog(settings)``, ``read_status(settings)`` -> ``ShipperStatus``.
- :mod:`.status`: ``offsite_status(settings)`` -> ``OffsiteStatus`` (lag per kind, WAL too).

Settings: ``AUTOGRAPH_OFFSITE_S3_{ENDPOINT,REGION,BUCKET,PREFIX,ACCESS_KEY,SECRET_KEY}``,
``AUTOGRAPH_OFFSITE_ENCRYPTION``, ``AUTOGRAPH_OFFSITE_KEY`` (else ``HOME/secrets/offsite-key``),
``AUTOGRAPH_WAL_SWITCH_SECONDS``, ``AUTOGRAPH_OFFSITE_{WAL_POLL,SYNC_INTERVAL}_SECONDS``.
"""
