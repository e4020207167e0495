
import hub.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('hub', '0003_brand_lookup_chain'),
    ]

    operations = [
        migrations.AddField(
            model_name='brand',
            name='own_lines',
            field=models.JSONField(blank=True, default=list, help_text='Your own numbers and DID ranges in E.164, a trailing * for a prefix, e.g. ["+31205550100", "+3120555*"]. Such a number is never looked up: of an M8Com fromNumber / toNumber the other one is the customer, and a call log or service hook never matches a customer by it.', validators=[hub.models.validate_own_lines], verbose_name="the brand's own lines"),
        ),
        migrations.AddField(
            model_name='brand',
            name='phone_address_types',
            field=models.JSONField(default=hub.models.default_phone_address_types, help_text='A phone lookup (Omnidesk phoneNumber, M8Com numbers, call logs and service hooks) finds addresses of these types: ["telephone"] (default) or ["telephone", "whatsapp"] to find a number stored as WhatsApp too.', validators=[hub.models.validate_phone_address_types], verbose_name='address types that count as a phone'),
        ),
        migrations.AddField(
            model_name='brand',
            name='suffix_match_digits',
            field=models.PositiveSmallIntegerField(default=0, help_text='0: off (default). 6 to 12: when no customer holds the exact E.164 number, one whose number ends in the same last N digits is found (for numbers stored without their country code), e.g. 9. Numbers of 5 digits or fewer are extensions and never looked up.', validators=[hub.models.validate_suffix_digits], verbose_name='suffix matching (last N digits)'),
        ),
        migrations.AddField(
            model_name='historicalbrand',
            name='own_lines',
            field=models.JSONField(blank=True, default=list, help_text='Your own numbers and DID ranges in E.164, a trailing * for a prefix, e.g. ["+31205550100", "+3120555*"]. Such a number is never looked up: of an M8Com fromNumber / toNumber the other one is the customer, and a call log or service hook never matches a customer by it.', validators=[hub.models.validate_own_lines], verbose_name="the brand's own lines"),
        ),
        migrations.AddField(
            model_name='historicalbrand',
            name='phone_address_types',
            field=models.JSONField(default=hub.models.default_phone_address_types, help_text='A phone lookup (Omnidesk phoneNumber, M8Com numbers, call logs and service hooks) finds addresses of these types: ["telephone"] (default) or ["telephone", "whatsapp"] to find a number stored as WhatsApp too.', validators=[hub.models.validate_phone_address_types], verbose_name='address types that count as a phone'),
        ),
        migrations.AddField(
            model_name='historicalbrand',
            name='suffix_match_digits',
            field=models.PositiveSmallIntegerField(default=0, help_text='0: off (default). 6 to 12: when no customer holds the exact E.164 number, one whose number ends in the same last N digits is found (for numbers stored without their country code), e.g. 9. Numbers of 5 digits or fewer are extensions and never looked up.', validators=[hub.models.validate_suffix_digits], verbose_name='suffix matching (last N digits)'),
        ),
    ]
