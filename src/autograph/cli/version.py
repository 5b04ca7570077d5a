"""The line ``autograph --version`` prints, shared by the entry point's fast path and the app."""

from __future__ import annotations


def version_text() -> str:
    """``autograph <installed version>`` (``unknown`` when run from a source tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("autograph")
    except PackageNotFoundError:  # run from a source tree without installing
        number = "unknown"
    return f"autograph {number}"
