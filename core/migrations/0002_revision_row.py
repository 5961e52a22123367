from django.db import migrations


def create_rows(apps, schema_editor):
    ConfigRevision = apps.get_model("config_backend", "ConfigRevision")
    for name in ("config", "api_keys"):
        ConfigRevision.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("config_backend", "0001_initial")]

    operations = [migrations.RunPython(create_rows, migrations.RunPython.noop)]
