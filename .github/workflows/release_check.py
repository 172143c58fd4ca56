"""Refuse to release an sdist whose metadata does not match the release.

Usage: release_check.py SDIST VERSION REPOSITORY_URL

The version in the sdist's PKG-INFO must be the one in the tag, and every
project URL must point into the repository the release runs from (the URLs
are set by hand before the first release: see RELEASING.md).
"""

from __future__ import annotations

import sys
import tarfile
from email.parser import BytesParser


def problems(sdist: str, version: str, repository: str) -> list[str]:
    with tarfile.open(sdist) as tar:
        names = [n for n in tar.getnames() if n.count("/") == 1 and n.endswith("/PKG-INFO")]
        if len(names) != 1:
            return [f"{sdist}: expected one top-level PKG-INFO, found {names}"]
        member = tar.extractfile(names[0])
        assert member is not None
        meta = BytesParser().parse(member)
    found: list[str] = []
    if meta["Version"] != version:
        found.append(f"{meta['Name']} is version {meta['Version']}, the tag says {version}")
    urls = meta.get_all("Project-URL") or []
    if not urls:
        found.append(f"{meta['Name']} has no project URLs")
    for entry in urls:
        label, _, url = entry.partition(", ")
        # GitHub paths are case-insensitive; the owner's case may differ.
        if url.lower() != repository.lower() and not url.lower().startswith(
            repository.lower() + "/"
        ):
            found.append(f"{meta['Name']} URL {label} = {url} is not in {repository}")
    return found


def main() -> int:
    sdist, version, repository = sys.argv[1:]
    found = problems(sdist, version, repository.rstrip("/"))
    for problem in found:
        print(f"::error::{problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
