"""mkdocs hook: links from a page to files of the repository outside docs/ (``../bench/results/x.json``).

They are written relative to the page, so they also work when the Markdown is read in the
repository. The hook copies each linked file into the site under ``repo/`` and points the link
there. A link to a file that does not exist (or to Markdown outside docs/) is left alone, so
``mkdocs build --strict`` fails on it.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

LINK = re.compile(r"\]\((?P<path>(?:\.\./)+[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    docs = Path(os.path.abspath(config.docs_dir))
    repo = docs.parent
    page_dir = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match[str]) -> str:
        # normpath, not resolve: a symlinked folder of the repository stays inside it.
        target = Path(os.path.normpath(docs / page_dir / match["path"]))
        inside = target.is_relative_to(repo) and not target.is_relative_to(docs)
        if not inside or not target.is_file() or target.suffix == ".md":
            return match[0]
        uri = "repo/" + target.relative_to(repo).as_posix()
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(target)))
        return f"]({posixpath.relpath(uri, page_dir or '.')}{match['anchor'] or ''})"

    return LINK.sub(relink, markdown)
