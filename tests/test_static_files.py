"""The admin is fully styled under gunicorn with DEBUG off: the app serves its static files."""

import os
import re
import subprocess
import sys
import urllib.request

import pytest

from tests.live import ROOT, server


@pytest.mark.slow
def test_the_admin_css_is_served_by_gunicorn_with_debug_off(tmp_path):
    env = {"DEBUG": "0", "STATIC_ROOT": str(tmp_path / "static")}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    with server(env=env) as base_url:
        page = urllib.request.urlopen(base_url + "/admin/login/").read().decode()
        stylesheets = re.findall(r'href="(/static/admin/css/[^"]+\.css)"', page)
        assert stylesheets, "the login page links the admin stylesheets"
        for href in stylesheets:
            # Hashed names (manifest storage) so browsers can cache them for ever.
            assert re.search(r"\.[0-9a-f]{12}\.css$", href)
            response = urllib.request.urlopen(base_url + href)
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/css")
            assert "immutable" in response.headers["Cache-Control"]
