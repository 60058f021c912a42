"""What the book needs from Sphinx's translation machinery (the Chinese edition, ``locales/``).

Sphinx translates a page at read time (its ``Locale`` transform) from the gettext catalog
``locales/<language>/LC_MESSAGES/<page>.mo``, and ``make pot`` extracts those catalogs with the
``gettext`` builder. Three things do not work out of the box with Jupyter Book 1 and are done
here:

* Display equations are messages by default. A translated display equation renders as ``\\[::\\]``
  (and there is nothing to translate in one), so every ``math_block`` is marked untranslatable
  before extraction and before the ``Locale`` transform.
* The part captions of ``_toc.yml`` are extracted (the gettext builder reads every toctree) but
  never applied: ``sphinx_external_toc`` inserts its toctrees after the ``Locale`` transform has
  run. They are translated here, from the root page's catalog, once they exist.
* Jupyter Book sets the theme's "Search this book..." text itself, and the book's title
  (``html_title``, in the navigation bar and every page's ``<title>``) comes from _config.yml;
  in a translated build both are replaced by their translations in
  ``locales/<language>/LC_MESSAGES/theme.po`` (read here when the configuration is read,
  before Sphinx compiles any catalog; ``make pot`` leaves that file alone).

The language switch in the article header is ``_templates/lang-switch.html``.
"""

from __future__ import annotations

from os import path

from babel.messages.pofile import read_po
from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

SEARCH_BAR_TEXT = "Search this book..."


def _catalog(app, domain: str):
    dirs = [path.join(app.srcdir, d) for d in app.config.locale_dirs]
    catalog, has_catalog = init_locale(dirs, app.config.language, domain)
    return catalog if has_catalog else None


def _translating(config) -> bool:
    return bool(config.language) and config.language != "en"


class KeepDisplayMathUntranslated(SphinxTransform):
    """Display equations are neither extracted nor translated."""

    default_priority = 15  # before sphinx.transforms.i18n.Locale (20)

    def apply(self, **kwargs) -> None:
        for node in self.document.findall(nodes.math_block):
            node["translatable"] = False


class TranslateTocCaptions(SphinxTransform):
    """Translate the part captions of _toc.yml (inserted by sphinx_external_toc, priority 100)."""

    default_priority = 110

    def apply(self, **kwargs) -> None:
        if not _translating(self.config):
            return
        toctrees = list(self.document.findall(addnodes.toctree))
        if not toctrees:
            return
        domain = docname_to_domain(self.env.docname, self.config.gettext_compact)
        catalog = _catalog(self.app, domain)
        if catalog is None:
            return
        for toctree in toctrees:
            caption = toctree.get("caption")
            if caption:
                translated = catalog.gettext(caption)
                toctree["caption"] = translated
                toctree["rawcaption"] = translated


def translate_theme_texts(app, config) -> None:
    """The search box's text and the book's title (html_title) from theme.po."""
    if not _translating(config):
        return
    for locale_dir in config.locale_dirs:
        po = path.join(app.srcdir, locale_dir, config.language, "LC_MESSAGES", "theme.po")
        if not path.isfile(po):
            continue
        with open(po, "rb") as f:
            catalog = read_po(f)

        def translated(text: str, catalog=catalog) -> str:
            message = catalog.get(text)
            if message is not None and message.string and not message.fuzzy:
                return message.string
            return text

        options = dict(config.html_theme_options or {})
        options["search_bar_text"] = translated(options.get("search_bar_text", SEARCH_BAR_TEXT))
        config.html_theme_options = options
        if config.html_title:
            config.html_title = translated(config.html_title)
        return


def setup(app):
    app.add_transform(KeepDisplayMathUntranslated)
    app.add_transform(TranslateTocCaptions)
    app.connect("config-inited", translate_theme_texts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
