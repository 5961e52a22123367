from django.contrib import admin
from django.urls import path

admin.site.site_header = "Assistant configuration"
admin.site.site_title = "Assistant configuration"
admin.site.index_title = "Assistants, tools and threads"

urlpatterns = [
    path("admin/", admin.site.urls),
]
