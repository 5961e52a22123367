"""The admin is fully styled under gunicorn with DEBUG off: the app serves its static files."""

import re
import urllib.request

import pytest

from tests.live import server


@pytest.mark.slow
def test_the_admin_css_is_served_by_gunicorn_with_debug_off():
    # server() runs collectstatic once, as a deployment does, and points STATIC_ROOT at it.
    with server(env={"DEBUG": "0"}) as base_url:
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
