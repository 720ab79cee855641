"""Usernames and (non-empty) emails unique whatever their case, enforced by the database.

Functional indexes on ``UPPER(...)``: Django's ``__iexact`` lookups compare ``UPPER(column::text)``,
so the friendly checks in ``accounts.selectors`` use these indexes too.
"""

from django.db import migrations

USERNAME_INDEX = "auth_user_username_upper_uniq"
EMAIL_INDEX = "auth_user_email_upper_uniq"


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunSQL(
            f'CREATE UNIQUE INDEX IF NOT EXISTS {USERNAME_INDEX} ON auth_user (UPPER("username"::text))',
            f"DROP INDEX IF EXISTS {USERNAME_INDEX}",
        ),
        migrations.RunSQL(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {EMAIL_INDEX} ON auth_user (UPPER(\"email\"::text)) WHERE email <> ''",
            f"DROP INDEX IF EXISTS {EMAIL_INDEX}",
        ),
    ]
