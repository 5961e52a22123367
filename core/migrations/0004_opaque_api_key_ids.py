"""Give every existing API key a random id.

The library made a key's id "<prefix>.<sha512 hash>", which put the hash in admin URLs and
access logs. New keys get a random id (APIKey.objects.assign_key); this rewrites the old ones.
Nothing refers to a key by id except the admin's log, which is rewritten along, so each key keeps
its history.
"""

import uuid

from django.db import migrations


def give_keys_random_ids(apps, schema_editor):
    APIKey = apps.get_model("config_backend", "APIKey")
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    content_type = ContentType.objects.filter(app_label="config_backend", model="apikey").first()
    for old in list(APIKey.objects.values_list("pk", flat=True)):
        new = uuid.uuid4().hex
        APIKey.objects.filter(pk=old).update(id=new)
        if content_type is not None:
            LogEntry.objects.filter(content_type=content_type, object_id=old).update(object_id=new)


class Migration(migrations.Migration):
    dependencies = [
        ("config_backend", "0003_api_key"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversed, the keys keep their random ids: the old ones cannot be (and need not be) rebuilt.
    operations = [migrations.RunPython(give_keys_random_ids, migrations.RunPython.noop)]
