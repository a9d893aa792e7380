"""Shared REST plumbing for every face, one module per concern.

errors, dates, parsers (request bodies and query values), paging (and sorting), auth."""
