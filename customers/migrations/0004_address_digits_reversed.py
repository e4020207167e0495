
from django.db import migrations, models

PHONE_KINDS = ("telephone", "whatsapp")
BATCH = 5000


def backfill(apps, schema_editor):
    """Existing phone addresses get their reversed digits (customers.normalize.digits_reversed)."""
    if schema_editor.connection.vendor == "postgresql":
        # normalized is E.164 ("+" and digits): one statement, no rows through Python.
        schema_editor.execute(
            "UPDATE customers_address SET digits_reversed = reverse(regexp_replace(normalized, '[^0-9]', '', 'g')) "
            "WHERE kind IN ('telephone', 'whatsapp')"
        )
        return
    Address = apps.get_model("customers", "Address")
    last = 0
    while True:
        rows = list(
            Address.objects.filter(kind__in=PHONE_KINDS, pk__gt=last).order_by("pk").values_list("pk", "normalized")[
                :BATCH
            ]
        )
        if not rows:
            return
        for pk, normalized in rows:
            digits = "".join(char for char in reversed(normalized) if char.isdigit())
            Address.objects.filter(pk=pk).update(digits_reversed=digits)
        last = rows[-1][0]


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0003_help_text'),
        ('hub', '0002_help_text_and_history'),
    ]

    operations = [
        migrations.AddField(
            model_name='address',
            name='digits_reversed',
            field=models.CharField(blank=True, default='', editable=False, help_text="A phone's E.164 digits backwards (blank for other types): the brand's suffix matching on the last N digits is a prefix match on this indexed column.", max_length=32, verbose_name='digits reversed'),
        ),
        migrations.AddIndex(
            model_name='address',
            index=models.Index(fields=['brand', 'kind', 'digits_reversed'], name='address_suffix_lookup'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
