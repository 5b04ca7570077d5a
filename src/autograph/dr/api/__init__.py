"""The admin/DR HTTP API: the only package in ``dr`` that imports FastAPI.

:mod:`.routes` is what the gateway mounts; each other module is one resource's router and stays
thin: parse, call the core, translate errors to ``{"detail": …}``.
"""
