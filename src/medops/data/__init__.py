"""Raw data in: sources read in bounded chunks (contracts, de-identification and datasets follow).

The source classes load on first use, so that importing a light module of this package
(dataset records, say) does not load pandas and Arrow.
"""

from __future__ import annotations

from medops.lazy import members

__all__ = ["CsvSource", "FhirNdjsonSource", "ParquetSource", "Source", "SqlSource"]

__getattr__ = members(__name__, dict.fromkeys(__all__, "sources"))
