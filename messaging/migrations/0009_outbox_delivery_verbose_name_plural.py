from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0008_outbox_delivery_claimed_by"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="outboxdelivery",
            options={"ordering": ["id"], "verbose_name_plural": "outbox deliveries"},
        ),
    ]
