"""Every saved or deleted brand or key, whichever path saved it (services, admin,
a cascade), bumps the brand's generation: the credential cache
(hooks.inbound.common) must not answer with the old row. Connected in
HubConfig.ready()."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Brand, Credential
from .services import brand_forget, brand_touch


# Every saved or deleted brand or key, whichever path saved it (services, admin,
# a cascade): the credential cache (hooks.inbound.common) must not answer with the
# old row. A queryset .update() sends no signal: the hub's only ones are brand_touch
# itself and the batched last_used_at touches (which no cached answer depends on).
@receiver(post_save, sender=Brand, dispatch_uid="hub.brand_saved")
@receiver(post_save, sender=Credential, dispatch_uid="hub.credential_saved")
@receiver(post_delete, sender=Credential, dispatch_uid="hub.credential_deleted")
def _brand_or_key_changed(sender, instance, created=False, **kwargs):
    if sender is Brand and created:
        return  # nothing is cached about a brand that did not exist (ids are never reused)
    generation = brand_touch(brand_id=instance.pk if sender is Brand else instance.brand_id)
    if sender is Brand and generation is not None:
        instance.generation = generation


@receiver(post_delete, sender=Brand, dispatch_uid="hub.brand_deleted")
def _brand_deleted(sender, instance, **kwargs):
    brand_forget(brand_id=instance.pk)
