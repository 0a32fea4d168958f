"""Email HTML made safe to display: an allow-list sanitizer built on nh3 (ammonia).

``EmailActivity.body_html`` keeps the HTML as received; whatever shows it — the
API's ``body_html_sanitized``, the admin's preview — passes it through
``sanitize_email_html`` first. What survives is what an email needs to read
well: text formatting, lists, tables, links, inline images and a short list of
harmless style properties. Scripts, event handlers, frames, forms, SVG and
MathML, and every URL scheme that can run code are gone. Remote images (a
sender's tracking pixels) are dropped unless the viewer asks for them; images
sent with the message (``cid:``) and embedded raster images (``data:``)
always stay.

nh3 parses like a browser (html5ever), so entities, odd case and whitespace in
a URL are resolved before the scheme is checked. Its own checks run first; the
attribute filter below then narrows them per attribute, because nh3's URL
schemes are one list for ``href`` and ``src`` alike.
"""

from __future__ import annotations

import re
from functools import cache

import nh3

TAGS = frozenset(
    {
        *("a", "abbr", "acronym", "address", "b", "bdi", "bdo", "big", "blockquote", "br"),
        *("caption", "center", "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div"),
        *("dl", "dt", "em", "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp"),
        *("small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot"),
        *("th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr"),
    }
)
# Removed with everything inside them: their content is code, or is not meant
# to be read as part of the message (a <title>, an <svg>'s drawing).
REMOVED_WITH_CONTENT = frozenset(
    {
        *("script", "style", "title", "template", "noscript", "iframe", "frame", "frameset"),
        *("noframes", "object", "embed", "applet", "noembed", "svg", "math"),
    }
)
# No id or name (they could clobber the host page's DOM) and no class (it would
# pick up the host page's CSS; the email's own style sheets are removed anyway).
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"title", "dir", "lang", "align", "style"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace"},
    "table": {"width", "height", "border", "cellpadding", "cellspacing", "bgcolor", "summary"},
    "tr": {"bgcolor", "valign", "height"},
    "td": {"width", "height", "bgcolor", "valign", "colspan", "rowspan", "nowrap", "headers"},
    "th": {"width", "height", "bgcolor", "valign", "colspan", "rowspan", "nowrap", "headers", "scope"},
    "col": {"span", "width", "valign"},
    "colgroup": {"span", "width", "valign"},
    "thead": {"valign"},
    "tbody": {"valign"},
    "tfoot": {"valign"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type", "reversed"},
    "ul": {"type"},
    "li": {"value", "type"},
    "hr": {"width", "size", "noshade", "color"},
    "blockquote": {"type"},  # type="cite": how mail clients mark a quoted reply
    "time": {"datetime"},
    "del": {"datetime"},
    "ins": {"datetime"},
}
# The schemes nh3 lets through on any URL attribute; _attribute narrows them per attribute.
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid", "data"})
LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
REMOTE_SCHEMES = frozenset({"http", "https"})
# Raster images only: an SVG is a document that can carry script of its own.
DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|jpg|webp|bmp);base64,[a-z0-9+/=\s]*\Z", re.IGNORECASE)

# Properties that take no URL and cannot lift the email out of its place on the
# page (no position, no z-index, no background-image, no content, no behavior).
STYLE_PROPERTIES = frozenset(
    {
        *("color", "background-color", "font", "font-family", "font-size", "font-style"),
        *("font-variant", "font-weight", "line-height", "letter-spacing", "word-spacing"),
        *("text-align", "text-decoration", "text-indent", "text-transform", "white-space"),
        *("word-break", "word-wrap", "overflow-wrap", "vertical-align", "direction"),
        *("margin", "margin-top", "margin-right", "margin-bottom", "margin-left"),
        *("padding", "padding-top", "padding-right", "padding-bottom", "padding-left"),
        *("border", "border-top", "border-right", "border-bottom", "border-left"),
        *("border-color", "border-style", "border-width", "border-radius"),
        *("border-collapse", "border-spacing", "width", "height", "min-width", "max-width"),
        *("min-height", "max-height", "display", "list-style-type", "table-layout", "float"),
        *("clear", "caption-side", "empty-cells"),
    }
)
# nh3 checks property names only, and decodes CSS escapes (``u\72 l(`` becomes
# ``url(``) after the attribute filter has run, so values are checked here,
# before it, against an allow-list of characters: colour functions are the only
# parentheses (so no url(), expression() or var()), and no backslash, colon,
# semicolon, comment or at-rule gets through.
COLOR_FUNCTION = re.compile(r"\b(?:rgba?|hsla?)\(\s*[\d\s.,%/+-]*\)", re.IGNORECASE)
SAFE_STYLE_VALUE = re.compile(r"""[\w\s#%.,/'"!+-]*\Z""")
# A negative margin or indent would move the email over the page around it.
MAY_NOT_BE_NEGATIVE = ("margin", "text-indent")
NEGATIVE = re.compile(r"-\s*\.?\d")
# What browsers ignore in a URL before reading its scheme (WHATWG URL): tabs and
# newlines anywhere, control characters and spaces at either end.
URL_INVISIBLE = re.compile(r"[\t\n\r]|^[\x00-\x20]+|[\x00-\x20]+$")
URL_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE)


def sanitize_email_html(html: str, *, remote_images: bool = False) -> str:
    """``html`` reduced to what is safe to put into a page. Remote images are
    dropped unless ``remote_images`` (the viewer asked for them)."""
    if not html:
        return ""
    return _cleaner(remote_images).clean(html)


@cache
def _cleaner(remote_images: bool) -> nh3.Cleaner:
    # One per choice, built once: building the rule set costs more than most emails.
    return nh3.Cleaner(
        tags=set(TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes=ATTRIBUTES,
        attribute_filter=lambda tag, name, value: _attribute(tag, name, value, remote_images=remote_images),
        url_schemes=set(URL_SCHEMES),
        # A relative URL would point into this application, not the sender's site.
        url_relative="deny",
        # Links open outside the page showing the email, which they can neither see nor steer.
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties=set(STYLE_PROPERTIES),
        strip_comments=True,
    )


def _attribute(tag: str, name: str, value: str, *, remote_images: bool) -> str | None:
    """The value to keep for one attribute, or None to drop it."""
    if name == "style":
        return _style(value)
    if (tag, name) == ("a", "href"):
        return value if _scheme(value) in LINK_SCHEMES else None
    if (tag, name) == ("img", "src"):
        return _image_source(value, remote_images=remote_images)
    if (tag, name) in {("a", "target"), ("a", "rel")}:
        return value  # set by the cleaner itself
    # nh3 filtered already; asking again keeps the allow-list the only way in.
    return value if name in ATTRIBUTES["*"] or name in ATTRIBUTES.get(tag, ()) else None


def _image_source(value: str, *, remote_images: bool) -> str | None:
    scheme = _scheme(value)
    if scheme == "cid":
        return value
    if scheme == "data":
        return value if DATA_IMAGE.match(value.strip()) else None
    if scheme in REMOTE_SCHEMES and remote_images:
        return value
    return None


def _scheme(url: str) -> str:
    found = URL_SCHEME.match(URL_INVISIBLE.sub("", url))
    return found.group(1).lower() if found else ""


def _style(value: str) -> str | None:
    declarations = [d for d in (_declaration(part) for part in value.split(";")) if d]
    return "; ".join(declarations) or None


def _declaration(text: str) -> str | None:
    name, colon, value = text.partition(":")
    name, value = name.strip().lower(), value.strip()
    if not (colon and value) or name not in STYLE_PROPERTIES:
        return None
    bare = COLOR_FUNCTION.sub("", value)
    balanced = bare.count('"') % 2 == 0 and bare.count("'") % 2 == 0
    if not (balanced and SAFE_STYLE_VALUE.match(bare)):
        return None
    if name.startswith(MAY_NOT_BE_NEGATIVE) and NEGATIVE.search(bare):
        return None
    return f"{name}: {value}"
