"""The disaster-recovery core: backups of every kind, their catalog, recovery and drills.

Returns pydantic models and raises :class:`autograph.errors.AutographError`s; never prints, never
exits (the CLI and the admin API translate). Start with :mod:`autograph.dr.catalog` (the manifest
is the commit point), then the producers (:mod:`.postgres`, :mod:`.buckets`), then
:mod:`.recovery`. Layer rules: see ``[tool.importlinter]`` in ``pyproject.toml``.
"""
