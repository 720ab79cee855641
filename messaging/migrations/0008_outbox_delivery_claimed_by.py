from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0007_outbox_delivery_no_db_foreign_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxdelivery",
            name="claimed_by",
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
    ]
