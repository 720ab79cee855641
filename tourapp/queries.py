"""The kernel's hand-written SQL: the API token lookup every authenticated request runs.

Built once per process from the models' metadata and run prepared (``tourapp.db.prepared_cursor``):
compiling the equivalent ORM query on every request cost more than the database work. It agrees
with the ORM query it replaces (``tourapp/tests/test_queries.py``).
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from tourapp.db import mark_in_database, prepared_cursor, select_columns


@cache
def _token_with_user_statement() -> tuple[str, list[str]]:
    user_model = get_user_model()
    columns, fields = select_columns(user_model, "u")
    pk = connection.ops.quote_name(str(user_model._meta.pk.column))
    sql = (
        f"SELECT t.created, {columns} FROM {Token._meta.db_table} t "  # noqa: S608 - names come from model meta, the key is a parameter
        f"JOIN {user_model._meta.db_table} u ON u.{pk} = t.user_id WHERE t.key = %s"
    )
    return sql, fields


def token_with_user(*, key: str) -> Token | None:
    """The API token ``key`` with its user loaded, as ``Token.objects.select_related("user").get(key=key)``;
    None if there is no such token."""
    sql, fields = _token_with_user_statement()
    with prepared_cursor() as cursor:
        row = cursor.execute(sql, [key], prepare=True).fetchone()
    if row is None:
        return None
    user = get_user_model().from_db(connection.alias, fields, row[1:])
    token = Token(key=key, user=user, created=row[0])
    mark_in_database(token)  # loaded from the database, as the ORM leaves it
    return token
