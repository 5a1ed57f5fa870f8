"""Print an nbgitpuller link that opens the student notebook in JupyterLab on a JupyterHub.

A student who clicks it logs in to the hub; nbgitpuller then clones the repository into their
home (or, on later clicks, merges new commits without overwriting their edits) and JupyterLab opens
release/initialization/initialization.ipynb.  The hub needs nbgitpuller installed in the user image.

    python -m scripts.nbgitpuller_link --hub https://hub.example.edu \
        --repo https://github.com/you/weight-init --branch main
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlencode, urlsplit

from scripts.course import ASSIGNMENT

NOTEBOOK = f"release/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"


def checkout_folder(repo: str) -> str:
    """The folder nbgitpuller clones into: the repository's last path part, without `.git`."""
    name = urlsplit(repo).path.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(".git")


def link(hub: str, repo: str, branch: str = "main", notebook: str = NOTEBOOK) -> str:
    """The hub URL that pulls `repo` at `branch` and opens `notebook` (a path inside the repo)."""
    for name, url in (("hub", hub), ("repo", repo)):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--{name} must be a full http(s) URL such as https://example.org/..., "
                             f"got {url!r}")
    folder = checkout_folder(repo)
    if not folder or not branch:
        raise ValueError(f"cannot tell the repository's name from {repo!r} or the branch is empty")
    query = urlencode({
        "repo": repo,
        "branch": branch,
        # Named explicitly so the clone's folder and the path below always agree.
        "targetpath": folder,
        "urlpath": f"lab/tree/{folder}/{notebook}",
    })
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", required=True, help="the JupyterHub's address, e.g. https://hub.example.edu")
    parser.add_argument("--repo", required=True, help="the course repository's clone URL")
    parser.add_argument("--branch", default="main", help="branch to pull (default: main)")
    args = parser.parse_args(argv)
    try:
        print(link(args.hub, args.repo, args.branch))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
