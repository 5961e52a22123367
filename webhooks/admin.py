"""Webhooks in the admin: endpoints (the secret shown once, in the answer to the add form),
their deliveries with every attempt (time, status, duration, the answer's start), and a
Resend action. The rules are the model's and webhooks.services'."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from webhooks.models import Attempt, Delivery, Event, Webhook, default_events
from webhooks.services import WEBHOOK_FIELDS, delivery_resend, webhook_update

# Attempts listed on a webhook's page, newest first.
RECENT_ATTEMPTS = 20


class WebhookForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=Event.choices,
        initial=default_events,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("`label_request` is accepted; nothing sends it yet."),
    )

    class Meta:
        model = Webhook
        fields = list(WEBHOOK_FIELDS)
        widgets = {"url": forms.URLInput(attrs={"size": 80})}


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    form = WebhookForm
    list_display = ["url", "events", "is_active", "disabled_reason", "created_at"]
    list_filter = ["is_active"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["disabled_reason", "created_at", "deliveries", "recent_attempts"]

    @admin.display(description=_("Deliveries"))
    def deliveries(self, webhook):
        url = reverse("admin:webhooks_delivery_changelist") + f"?webhook__id__exact={webhook.pk}"
        counts = {status: 0 for status in Delivery.Status.values}
        for status in webhook.deliveries.values_list("status", flat=True).iterator():
            counts[status] += 1
        summary = ", ".join(f"{count} {status}" for status, count in counts.items())
        return format_html('<a href="{}">{}</a>', url, summary)

    @admin.display(description=_("Recent attempts"))
    def recent_attempts(self, webhook):
        attempts = (
            Attempt.objects.filter(delivery__webhook=webhook)
            .select_related("delivery")
            .order_by("-id")[:RECENT_ATTEMPTS]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
            (
                (
                    f"{attempt.started_at:%Y-%m-%d %H:%M:%S}",
                    attempt.delivery.event,
                    attempt.status_code or "—",
                    attempt.duration_ms,
                    attempt.error,
                )
                for attempt in attempts
            ),
        )
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>",
            gettext("Time (UTC)"),
            gettext("Event"),
            gettext("Status"),
            gettext("Duration"),
            gettext("Error"),
            rows or format_html('<tr><td colspan="5">{}</td></tr>', gettext("None yet.")),
        )

    def save_model(self, request, obj, form, change):
        if change:  # through the service: re-activating clears disabled_reason
            data = {name: form.cleaned_data[name] for name in WEBHOOK_FIELDS}
            webhook_update(webhook=Webhook.objects.get(pk=obj.pk), **data)
            obj.refresh_from_db()
        else:  # the form ran the model's full_clean() already
            obj.save()

    def response_add(self, request, obj, post_url_continue=None):
        """The new webhook's secret, shown once: this page is the only place it appears."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Webhook created"),
            "webhook": obj,
        }
        response = TemplateResponse(request, "admin/webhooks/webhook/created.html", context)
        response["Cache-Control"] = "no-store"  # no browser or proxy cache keeps the secret
        return response


class AttemptInline(admin.TabularInline):
    """A delivery's attempts, read-only: whoever may view the delivery sees them."""

    model = Attempt
    fields = ["started_at", "status_code", "duration_ms", "error", "response_body"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("webhooks.view_delivery")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.action(description=_("Resend selected deliveries"), permissions=["change"])
def resend_selected(modeladmin, request, queryset):
    count = delivery_resend(deliveries=queryset)
    modeladmin.message_user(
        request,
        gettext("%(count)s will be sent again (a worker sends them).") % {"count": count},
        messages.SUCCESS,
    )


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "message_id",
        "webhook",
        "event",
        "status",
        "tries",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "event", "webhook"]
    list_select_related = ["webhook"]
    search_fields = ["message_id"]
    fields = [
        "message_id",
        "webhook",
        "event",
        "revision",
        "label_move",
        "data",
        "status",
        "tries",
        "next_attempt_at",
        "locked_until",
        "created_at",
        "finished_at",
    ]
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = [resend_selected]

    def has_add_permission(self, request):
        return False
