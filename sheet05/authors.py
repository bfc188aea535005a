"""The two names on the title page: read from authors.txt or --authors, refused while unset.

Standard library only: ``sheet05/setup.py`` checks the names before the set-up starts (so that
a student who has not set them learns it in a second, not after minutes of installing), and
``sheet05/export.py`` checks them again before it builds.
"""

import os
import re

AUTHORS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "authors.txt")

# The placeholders that authors.txt ships with, and the ones that messages and the README show
# in examples: a copied example must never end up on a title page.
PLACEHOLDERS = ("First Member", "Second Member", "Your Name", "Your Partner's Name")
EXAMPLE = './export.sh --authors "Your Name" "Your Partner\'s Name"'


class AuthorsError(Exception):
    """The names are missing, not two, or still placeholders; the message says how to set them."""


def read_authors(path=AUTHORS_FILE):
    """The names in authors.txt: one per non-empty line that is not a comment (#)."""
    if not os.path.isfile(path):
        raise AuthorsError("%s is missing.\n%s" % (path, how_to_set_names()))
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f.read().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _normal(name):
    return re.sub(r"\s+", " ", name).strip().casefold()


def is_placeholder(name):
    """True for an empty name, a shipped or example placeholder, or a <...> template."""
    normal = _normal(name)
    return (not normal or normal in {_normal(p) for p in PLACEHOLDERS}
            or "<" in normal or ">" in normal)


def how_to_set_names():
    return ("Set your two names once in authors.txt (one name per line, replacing the "
            "placeholder lines), then run ./export.sh again.\n"
            "  Or give them for one build: %s (with your real names).\n"
            "  To look at the PDF before you know both names: ./export.sh --draft writes "
            "draft.pdf, marked DRAFT on its title page." % EXAMPLE)


def names_problem(authors, source):
    """Why `authors` (from `source`: 'authors.txt' or '--authors') cannot go on a submission's
    title page, or None if they can."""
    if len(authors) != 2:
        found = ", ".join("'%s'" % a for a in authors) or "none"
        return ("%s must give exactly two names (a group of two); found %d: %s."
                % (source, len(authors), found))
    bad = [a for a in authors if is_placeholder(a)]
    if bad:
        shown = ", ".join("'%s'" % a if a.strip() else "an empty name" for a in bad)
        return "%s still holds placeholder names (%s), not yours." % (source, shown)
    return None


def left_as_it_was(pdf):
    """What a build that stopped did to `pdf` (a path): nothing, whether or not there is one."""
    name = os.path.basename(str(pdf))
    if os.path.exists(str(pdf)):
        return "%s was left as it was (nothing was replaced)." % name
    return "No %s was written (there is none yet)." % name


def check_names(authors=None, draft=False, path=AUTHORS_FILE):
    """The two names for the title page: `authors` (from --authors) or those in authors.txt.

    Raises AuthorsError, with how to set them, unless they are two real names. With `draft`,
    whatever is there is accepted (a draft build marks its title page DRAFT instead).
    """
    source = "--authors" if authors is not None else os.path.basename(path)
    if authors is None:
        try:
            authors = read_authors(path)
        except AuthorsError:
            if draft:
                return list(PLACEHOLDERS[:2])
            raise
    problem = names_problem(list(authors), source)
    if problem is None:
        return list(authors)
    if draft:
        names = [a for a in authors if a.strip()][:2]
        return names + list(PLACEHOLDERS[len(names):2])
    raise AuthorsError("%s\n  %s" % (problem, how_to_set_names()))
