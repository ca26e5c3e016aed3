"""Scenario documents: loading, schema and semantic validation, matrix expansion, catalogs."""
