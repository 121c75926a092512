from django.contrib import admin

from tradeops.admin_tools import ReadOnlyAdminMixin
from tradeops.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "reason"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "action", "object_id", "reason"]
    readonly_fields = [
        "created_at",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "reason",
        "before",
        "after",
    ]
    date_hierarchy = "created_at"
