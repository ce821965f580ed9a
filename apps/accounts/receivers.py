"""Ending access the moment a login is deactivated, its membership removed or its person leaves."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.accounts.middleware import stamp_new_session
from apps.accounts.models import Membership
from apps.accounts.services import access_end
from apps.org.models import Person


@receiver(user_logged_in, dispatch_uid="accounts.stamp_new_session")
def _stamp_new_session(sender, request, user, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        stamp_new_session(request)


@receiver(post_save, sender=get_user_model(), dispatch_uid="accounts.user_deactivated")
def _user_deactivated(sender, instance, created, **kwargs) -> None:
    if not created and not instance.is_active:
        access_end(user_id=instance.pk, reason="login.deactivated")


@receiver(post_delete, sender=Membership, dispatch_uid="accounts.membership_removed")
def _membership_removed(sender, instance: Membership, **kwargs) -> None:
    access_end(user_id=instance.user_id, reason="membership.removed")


@receiver(post_save, sender=Person, dispatch_uid="accounts.person_left")
def _person_left(sender, instance: Person, created, **kwargs) -> None:
    if created or instance.is_active:
        return
    for user_id in Membership.objects.filter(person=instance).values_list("user_id", flat=True):
        access_end(user_id=user_id, reason="person.inactive")
