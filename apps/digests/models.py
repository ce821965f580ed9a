"""Weekly digests: when each organisation gets them, who wants them, and the ledger of what was sent.

The ledger (`DigestDelivery`) has one row per recipient and ISO week, enforced by the database: a run
claims the row before it builds the email, so two runs (a re-run, a second worker, the hourly beat and
`manage.py send_digests` side by side) can never both send the same digest.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.org.models import Organisation


class Weekday(models.IntegerChoices):
    # ISO numbering, like the weeks themselves.
    MONDAY = 1, "Monday"
    TUESDAY = 2, "Tuesday"
    WEDNESDAY = 3, "Wednesday"
    THURSDAY = 4, "Thursday"
    FRIDAY = 5, "Friday"
    SATURDAY = 6, "Saturday"
    SUNDAY = 7, "Sunday"


class DigestSchedule(models.Model):
    """When an organisation's digests go out, in its own time zone (Organisation.time_zone).

    An organisation without a row gets the defaults: Monday 08:00, enabled.
    """

    organisation = models.OneToOneField(
        Organisation, on_delete=models.CASCADE, related_name="digest_schedule"
    )
    enabled = models.BooleanField(default=True)
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices, default=Weekday.MONDAY)
    send_time = models.TimeField(default=dt.time(8, 0))

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(weekday__gte=1, weekday__lte=7), name="digest_schedule_weekday_iso"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organisation}: {self.get_weekday_display()} {self.send_time:%H:%M}"


class DigestPreference(models.Model):
    """One user's choice. `subscribed` None means the role's default: on for CIO, FinOps and managers,
    off for members (they opt in)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digest_preference"
    )
    subscribed = models.BooleanField(null=True, blank=True)
    changed_at = models.DateTimeField(auto_now=True)
    changed_via = models.CharField(max_length=40, blank=True, default="")  # "unsubscribe link", "preferences"

    def __str__(self) -> str:
        state = {None: "role default", True: "subscribed", False: "unsubscribed"}[self.subscribed]
        return f"{self.user}: {state}"


class DeliveryStatus(models.TextChoices):
    # Being built; nothing has been handed to the mail server. A run that dies here leaves a claim that
    # expires, and a later run may take it over: the recipient cannot have received anything yet.
    CLAIMED = "claimed", "Claimed (being built)"
    # Handed to the mail server; the outcome is not recorded yet. A run that dies here may or may not have
    # delivered the message, so it is never sent again automatically (see UNCERTAIN).
    SENDING = "sending", "Handed to the mail server"
    SENT = "sent", "Sent"
    # The mail server could not be reached or refused the message: nothing was delivered; retried.
    FAILED = "failed", "Failed (will be retried)"
    # Possibly delivered (the connection broke during the hand-over, or the run died after it). Never
    # retried automatically: a missing digest is better than a duplicated one.
    UNCERTAIN = "uncertain", "Outcome unknown (not retried)"


class DigestDelivery(models.Model):
    """The sent ledger: one digest per recipient and ISO week (the week the digest reports on)."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    week = models.CharField(max_length=8)  # "2026-W32"
    email = models.EmailField()  # the address it went to
    role = models.CharField(max_length=20)
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.CLAIMED)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=200, blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-week", "pk"]
        verbose_name_plural = "digest deliveries"
        constraints = [models.UniqueConstraint(fields=["user", "week"], name="digest_delivery_once_per_week")]
        indexes = [models.Index(fields=["organisation", "week"], name="digest_delivery_org_week")]

    def __str__(self) -> str:
        return f"{self.week} → {self.email}: {self.status}"
