"""A small Django site for tests that run Django in its own processes (workers, the admin).

Its database comes from ``ASANA_WEBHOOKS_TEST_DJANGO_DB``: a ``postgresql://`` URL or a
SQLite file path. The handler and its files come from the variables in ``handlers``.
"""
