"""`make link` prints an nbgitpuller link that opens the committed student notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from scripts.course import ROOT
from scripts.nbgitpuller_link import link

HUB = "https://hub.example.edu/"
REPO = "https://github.com/example/weight-init.git"


def make_link(*variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(ROOT), "link", *variables],
                          capture_output=True, text=True, timeout=60)


def query(url: str) -> dict[str, str]:
    parts = parse_qs(urlsplit(url).query, strict_parsing=True)
    assert all(len(values) == 1 for values in parts.values()), parts
    return {key: values[0] for key, values in parts.items()}


def test_make_link_prints_the_git_pull_url_for_hub_repo_and_branch():
    done = make_link(f"HUB={HUB}", f"REPO={REPO}", "BRANCH=spring-2027")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "hub.example.edu",
                                                         "/hub/user-redirect/git-pull")
    assert query(url) == {
        "repo": "https://github.com/example/weight-init.git",
        "branch": "spring-2027",
        "targetpath": "weight-init",
        "urlpath": "lab/tree/weight-init/release/initialization/initialization.ipynb",
    }


def test_branch_defaults_to_main():
    assert query(make_link(f"HUB={HUB}", f"REPO={REPO}").stdout)["branch"] == "main"


@pytest.mark.parametrize("hub, repo", [("hub.example.edu", REPO), (HUB, "weight-init"), (HUB, "")])
def test_an_incomplete_url_is_refused_with_an_example(hub, repo):
    done = make_link(f"HUB={hub}", f"REPO={repo}")
    assert done.returncode != 0
    assert "must be a full http(s) URL such as https://" in done.stderr


def test_nbgitpuller_pulls_a_checkout_where_the_link_opens_the_notebook(tmp_path: Path):
    """The real nbgitpuller clones this repository's committed main branch; the link's urlpath,
    read relative to the folder JupyterLab serves (the home), is the student notebook."""
    params = query(link(HUB, REPO, "main"))
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "nbgitpuller.pull", ROOT.as_uri(), params["branch"], params["targetpath"]],
                   cwd=home, check=True, capture_output=True, timeout=120)
    opened = home / params["urlpath"].removeprefix("lab/tree/")
    assert opened.is_file()
    assert opened.read_bytes() == subprocess.run(
        ["git", "-C", str(ROOT), "show", "main:release/initialization/initialization.ipynb"],
        capture_output=True, check=True).stdout
    for helper in ["init_utils.py", "public_tests.py", "datasets/circles.h5"]:
        assert (opened.parent / helper).is_file(), f"the notebook imports {helper}"
