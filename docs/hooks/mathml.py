r"""MkDocs hook: render the site's math to MathML at build time, so pages need no script.

pymdownx.arithmatex (``generic: true``) leaves each formula as TeX in a wrapper,
``<span class="arithmatex">\(...\)</span>`` inline and ``<div class="arithmatex">\[...\]</div>``
for display math. This hook converts the TeX with latex2mathml and puts the MathML inside the
same wrapper, with the TeX kept in the ``alttext`` attribute (screen readers; an attribute, not
an annotation, so the search index holds each formula's text once). Browsers render MathML
natively (Chromium 109+, Firefox, Safari): no MathJax, no CDN, the built site works offline.
Headings with math get a MathML entry in the table of contents too.

A formula latex2mathml cannot convert is logged as a warning naming the page, so
``mkdocs build --strict`` fails on it rather than shipping raw TeX.
"""

from __future__ import annotations

import html
import logging
import re

from latex2mathml.converter import convert

log = logging.getLogger("mkdocs.hooks.mathml")

_WRAPPED = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">(?P<body>.*?)</(?P=tag)>',
    re.DOTALL,
)
_DELIMITERS = {"span": (r"\(", r"\)", "inline"), "div": (r"\[", r"\]", "block")}
# \text{M\&A}: inside text, TeX escapes of special characters stand for the characters.
_TEXT = re.compile(r"\\text\{([^{}]*)\}")
_TEXT_ESCAPE = re.compile(r"\\([&%$#_])")
# latex2mathml writes text characters as they are; an "&" that starts no entity is escaped.
_BARE_AMP = re.compile(r"&(?!#?\w+;)")
_MATH_OPEN = re.compile(r"^<math\b")
# A heading's table-of-contents entry keeps its math as TeX text: \( ... \).
_TOC_MATH = re.compile(r"\\\((.+?)\\\)")


def tex_to_mathml(tex: str, display: str) -> str:
    r"""Convert one formula (TeX without delimiters) to a ``<math>`` element.

    Parameters
    ----------
    tex : str
        The formula, e.g. ``\frac{a}{b}``.
    display : str
        ``"inline"`` or ``"block"``.

    Returns
    -------
    str
        The MathML, with the TeX as its ``alttext``.
    """
    source = _TEXT.sub(lambda m: r"\text{" + _TEXT_ESCAPE.sub(r"\1", m.group(1)) + "}", tex)
    mathml = _BARE_AMP.sub("&amp;", convert(source, display=display))
    alttext = html.escape(" ".join(tex.split()), quote=True)
    return _MATH_OPEN.sub(lambda _: f'<math alttext="{alttext}"', mathml.strip(), count=1)


def on_page_content(html_text: str, page, config, files) -> str:
    """Replace each arithmatex formula of a page with its MathML."""

    def render(match: re.Match[str]) -> str:
        tag = match.group("tag")
        opening, closing, display = _DELIMITERS[tag]
        body = html.unescape(match.group("body")).strip()
        if not (body.startswith(opening) and body.endswith(closing)):
            log.warning(
                "%s: math not in %s %s delimiters: %s",
                page.file.src_uri,
                opening,
                closing,
                body[:80],
            )
            return match.group(0)
        tex = body[len(opening) : -len(closing)]
        try:
            mathml = tex_to_mathml(tex, display)
        except Exception as exc:  # latex2mathml raises many kinds on TeX it cannot parse
            log.warning(
                "%s: cannot convert math to MathML (%s): %s",
                page.file.src_uri,
                exc,
                tex.strip()[:80],
            )
            return match.group(0)
        return f'<{tag} class="arithmatex">{mathml}</{tag}>'

    _typeset_toc(page.toc.items)
    return _WRAPPED.sub(render, html_text)


def _typeset_toc(items) -> None:
    """Give the table-of-contents entries of headings with math a MathML title.

    mkdocs-material shows ``item.typeset["title"]`` in the table of contents where it is set
    (as its typeset plugin does) and keeps ``item.title``, the text, for the aria-label.
    """
    for item in items:
        if _TOC_MATH.search(item.title):
            try:
                title = _TOC_MATH.sub(
                    lambda m: tex_to_mathml(html.unescape(m.group(1)), "inline"), item.title
                )
            except Exception as exc:
                log.warning("cannot convert the math of heading %r (%s)", item.title, exc)
            else:
                item.typeset = {"title": title}
        _typeset_toc(item.children)
