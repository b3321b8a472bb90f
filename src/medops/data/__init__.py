"""Raw data in: sources read in bounded chunks (contracts, de-identification and datasets follow)."""

from medops.data.sources import CsvSource, FhirNdjsonSource, ParquetSource, Source, SqlSource

__all__ = ["CsvSource", "FhirNdjsonSource", "ParquetSource", "Source", "SqlSource"]
