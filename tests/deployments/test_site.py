"""What a site is: checked paths, content types, cache policy, digests."""

from __future__ import annotations

import hashlib

import pytest

from server.core.errors import InvalidArgument
from server.deployments.site import (
    ASSET_CACHE_CONTROL,
    FINGERPRINTED_CACHE_CONTROL,
    HTML_CACHE_CONTROL,
    INVALID_SITE,
    Site,
    cache_control_for,
    content_type_for,
)


def test_paths_that_could_escape_or_confuse_a_target_are_refused() -> None:
    bad = [
        "/etc/passwd",
        "a/../b.html",
        "./x.html",
        "a//b.html",
        "a\\b.html",
        ".git/config",
        "x/.GIT/hooks/pre-commit",
        "",
        "new\nline.html",
    ]
    with pytest.raises(InvalidArgument) as raised:
        Site.of({"index.html": b"ok", **{path: b"x" for path in bad}})

    assert raised.value.reason == INVALID_SITE
    assert len(raised.value.violations) == len(bad)


def test_a_site_needs_an_index_page() -> None:
    with pytest.raises(InvalidArgument) as raised:
        Site.of({"about.html": b"x"})
    assert [v.field for v in raised.value.violations] == ["files"]


def test_content_types_are_guessed_unless_given() -> None:
    site = Site.of({"index.html": b"x", "data.bin": (b"\0", "application/x-thing"), "a.JS": b""})
    assert site.files["index.html"].content_type == "text/html; charset=utf-8"
    assert site.files["data.bin"].content_type == "application/x-thing"
    assert site.files["a.JS"].content_type == "text/javascript; charset=utf-8"
    assert content_type_for("fonts/x.woff2") == "font/woff2"
    assert content_type_for("README") == "application/octet-stream"


def test_cache_policy() -> None:
    assert cache_control_for("index.html", "text/html; charset=utf-8") == HTML_CACHE_CONTROL
    for fingerprinted in (
        "assets/app-3F2A9C1B.js",
        "main.5d41402abc4b2a76.css",
        "chunk-KXJ4QZ7P.js",
    ):
        assert cache_control_for(fingerprinted, "text/css") == FINGERPRINTED_CACHE_CONTROL
    for plain in ("app.js", "logo-dark.png", "favicon.ico", "jquery-3.7.1.min.js"):
        assert cache_control_for(plain, "image/png") == ASSET_CACHE_CONTROL, plain


def test_digests_and_duplicates() -> None:
    site = Site.of({"index.html": b"same", "b/index.html": b"same", "c.txt": b"other"})
    assert site.files["c.txt"].sha1 == hashlib.sha1(b"other").hexdigest()  # noqa: S324
    assert sorted(file.path for file in site.by_digest().values()) == ["b/index.html", "c.txt"]
    assert site.total_bytes == 13
