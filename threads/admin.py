from django.contrib import admin

from threads.models import UserAssistantThread


@admin.register(UserAssistantThread)
class UserAssistantThreadAdmin(admin.ModelAdmin):
    list_display = ["user_id", "assistant", "thread_id", "last_used", "created_at"]
    list_filter = ["assistant"]
    list_select_related = ["assistant"]
    search_fields = ["=user_id", "thread_id"]
    autocomplete_fields = ["assistant"]
    readonly_fields = ["id", "created_at", "updated_at"]
    date_hierarchy = "last_used"
