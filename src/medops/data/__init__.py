"""Raw data in: sources read in bounded chunks (contracts, de-identification and datasets follow).

The source classes load on first use, so that importing a light module of this package
(dataset records, say) does not load pandas and Arrow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CsvSource", "FhirNdjsonSource", "ParquetSource", "Source", "SqlSource"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from medops.data import sources

        return getattr(sources, name)
    raise AttributeError(f"module 'medops.data' has no attribute {name!r}")
