"""The admin's delegation graph (assistants.admin.graph): assistants → tools → delegates, drawn by
Graphviz as SVG, what is inactive greyed; names are shown as text, never read as DOT or HTML.

Needs Debian's graphviz (`scripts/install-system-deps`). The browser test's screenshots are in
test-artifacts/admin-graph/.
"""

import xml.etree.ElementTree as ET

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from assistants.admin.graph import (
    ACTIVE_COLOUR,
    INACTIVE_COLOUR,
    assistant_node,
    delegation_graph,
    tool_node,
)
from assistants.models import Assistant
from tests.browser import logged_in_admin
from tests.factories import (
    assistant_with_tools,
    link,
    make_delegate_tool,
    session,
    staff_user,
)
from tests.live import ROOT
from tools.models import Tool

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}"
GRAPH_URL = "/admin/assistants/assistant/graph/"
ARTIFACTS = ROOT / "test-artifacts" / "admin-graph"
PASSWORD = "correct horse battery staple"


def drawn_graph(client) -> ET.Element:
    """The page's <svg>, parsed."""
    page = client.get(GRAPH_URL).content.decode()
    start = page.index("<svg", page.index('<div id="delegation-graph">'))
    end = page.index("</svg>", start) + len("</svg>")
    return ET.fromstring(page[start:end])


def element(svg: ET.Element, title: str) -> ET.Element:
    """The node or edge whose <title> (graphviz: its DOT id, `a -> b` for an edge) is `title`."""
    for group in svg.iter(f"{SVG}g"):
        heading = group.find(f"{SVG}title")
        if heading is not None and heading.text == title:
            return group
    raise AssertionError(f"{title} is not drawn")


def stroke(group: ET.Element) -> str:
    """The colour of a node's outline or an edge's line."""
    for shape in group.iter():
        if shape.tag in {f"{SVG}polygon", f"{SVG}ellipse", f"{SVG}path"}:
            return shape.get("stroke")
    raise AssertionError("no outline")


@pytest.fixture
def shaped():
    """A secretary delegating to an active and an inactive assistant, with an inactive tool and
    an inactive link."""
    secretary = Assistant.objects.create(name="Secretary", model="m", is_secretary=True)
    calendar = Assistant.objects.create(name="Calendar", model="m")
    archive = Assistant.objects.create(name="Archive", model="m", is_active=False)
    ask_calendar = make_delegate_tool("ask_calendar", calendar)
    ask_archive = make_delegate_tool("ask_archive", archive)
    weather = Tool.objects.create(name="get_weather", tool_type="weather", is_active=False)
    time = Tool.objects.create(name="get_time", tool_type="time")
    link(secretary, ask_calendar)
    link(secretary, ask_archive)
    link(secretary, weather)
    link(secretary, time, is_active=False)
    return {
        "secretary": secretary,
        "calendar": calendar,
        "archive": archive,
        "ask_calendar": ask_calendar,
        "ask_archive": ask_archive,
        "weather": weather,
        "time": time,
    }


def test_the_graph_greys_an_inactive_tool_and_link_and_draws_the_rest_in_colour(shaped):
    svg = drawn_graph(session(staff_user(superuser=True)))
    secretary, weather, time = shaped["secretary"], shaped["weather"], shaped["time"]
    # An inactive tool, and the link to it (the config does not get the tool).
    assert stroke(element(svg, tool_node(weather.pk))) == INACTIVE_COLOUR
    assert "inactive" in element(svg, tool_node(weather.pk)).get("class")
    assert stroke(element(svg, f"{assistant_node(secretary.pk)}->{tool_node(weather.pk)}")) == (
        INACTIVE_COLOUR
    )
    # An inactive link to an active tool: the link grey, the tool not.
    inactive_link = element(svg, f"{assistant_node(secretary.pk)}->{tool_node(time.pk)}")
    assert stroke(inactive_link) == INACTIVE_COLOUR
    assert "inactive" in inactive_link.get("class")
    assert stroke(element(svg, tool_node(time.pk))) == ACTIVE_COLOUR
    # An inactive delegate, and the delegation to it.
    archive, ask_archive = shaped["archive"], shaped["ask_archive"]
    assert stroke(element(svg, assistant_node(archive.pk))) == INACTIVE_COLOUR
    assert stroke(element(svg, f"{tool_node(ask_archive.pk)}->{assistant_node(archive.pk)}")) == (
        INACTIVE_COLOUR
    )
    # What the runtime gets is in colour.
    calendar, ask_calendar = shaped["calendar"], shaped["ask_calendar"]
    for active in (
        assistant_node(secretary.pk),
        assistant_node(calendar.pk),
        tool_node(ask_calendar.pk),
        f"{assistant_node(secretary.pk)}->{tool_node(ask_calendar.pk)}",
    ):
        assert stroke(element(svg, active)) != INACTIVE_COLOUR, active
        assert "inactive" not in element(svg, active).get("class"), active


def test_each_node_links_to_its_admin_page(shaped):
    svg = drawn_graph(session(staff_user(superuser=True)))
    anchor = element(svg, tool_node(shaped["weather"].pk)).find(f"{SVG}g/{SVG}a")
    assert anchor.get("{http://www.w3.org/1999/xlink}href") == reverse(
        "admin:tools_tool_change", args=[shaped["weather"].pk]
    )


HOSTILE_NAME = 'Evil"]; x -> y [label="\\N <script>alert(1)</script>\nsecond line'


def test_a_name_is_drawn_as_its_text_never_as_dot_or_markup():
    hostile = Assistant.objects.create(name=HOSTILE_NAME, model="m")
    page = session(staff_user(superuser=True)).get(GRAPH_URL).content.decode()
    assert "<script>alert(1)" not in page
    svg = drawn_graph(session(staff_user(superuser=True)))
    texts = [text.text for text in element(svg, assistant_node(hostile.pk)).iter(f"{SVG}text")]
    assert texts == HOSTILE_NAME.split("\n")
    assert len([group for group in svg.iter(f"{SVG}g") if group.get("class") == "node"]) == 1


def test_the_graph_is_read_in_three_queries_however_large(django_assert_num_queries):
    assistant_with_tools(3, name="Small")
    with django_assert_num_queries(3):
        small = delegation_graph()
    assistant_with_tools(30, name="Large")
    with django_assert_num_queries(3):
        large = delegation_graph()
    assert (small.tools, large.tools) == (3, 33)


def test_staff_who_may_not_view_tools_are_refused_the_graph():
    refused = session(staff_user("assistants.view_assistant")).get(GRAPH_URL)
    assert refused.status_code == 403
    allowed = session(staff_user("assistants.view_assistant", "tools.view_tool")).get(GRAPH_URL)
    assert allowed.status_code == 200


def test_without_graphviz_the_page_says_so_instead_of_failing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    page = session(staff_user(superuser=True)).get(GRAPH_URL)
    assert page.status_code == 200
    assert "Graphviz is not installed" in page.content.decode()


def test_the_index_and_the_assistant_list_link_the_graph():
    client = session(staff_user(superuser=True))
    assert GRAPH_URL in client.get(reverse("admin:index")).content.decode()
    assert (
        GRAPH_URL in client.get(reverse("admin:assistants_assistant_changelist")).content.decode()
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_staff_open_the_graph_from_the_index_and_see_the_picture(shaped):
    User.objects.create_superuser("staff", "staff@example.com", PASSWORD)
    with logged_in_admin(ARTIFACTS, "staff", PASSWORD) as (admin, base_url):
        page = admin.page
        page.click("#delegation-graph-module a")
        page.wait_for_selector("#delegation-graph svg")
        nodes = page.locator("#delegation-graph g.node")
        assert nodes.count() == 7  # 3 assistants, 4 tools
        # Archive and get_weather
        assert page.locator("#delegation-graph g.node.inactive").count() == 2
        # The picture has a size on screen (an SVG that failed to draw has none).
        box = page.locator("#delegation-graph svg").bounding_box()
        assert box["width"] > 300 and box["height"] > 100
        admin.screenshot("01-delegation-graph")
        # A node is a link to its admin page.
        page.locator("#delegation-graph g.node", has_text="get_weather").locator("a").click()
        page.wait_for_selector("#id_name")
        assert page.input_value("#id_name") == "get_weather"
        admin.screenshot("02-from-the-graph-to-the-tool")
        assert admin.problems == []
