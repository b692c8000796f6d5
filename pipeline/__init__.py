"""eqm: education-quality monitoring pipeline (ingest → validate → indicators → evidence → report)."""

__version__ = "0.1.0"
