"""Core: errors, settings and the zh/en vocabulary. Imports no other part of kamflow."""
