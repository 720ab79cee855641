"""The pytest-django test database as a ``DATABASE_URL``, for the processes a test starts."""

from __future__ import annotations


def subprocess_database_url() -> str:
    """``postgres://`` URL of the database this process uses (the test database, once set up)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"
