"""Keep `git status` clean after the notebook is saved with outputs. Standard library only.

git sees the notebook through its nbstripout filter (.gitattributes), without outputs and
editor metadata. But before it looks at a file's content, git compares the file's size with
the size it recorded when it last read the file: a notebook saved with outputs is larger, so
`git status` lists it as modified although `git diff` shows no change. `refresh` fixes git's
record: if the notebook, as git sees it, has the content git already has, it re-reads the
file (`git add`, which then stages nothing new); after a real edit it changes nothing.

Jupyter runs `post_save` after every save: this module is a Jupyter server extension that
registers it (./export.sh enables it in .venv/etc/jupyter/jupyter_server_config.py), beside any
save hook of the student's own. ./export.sh also runs `refresh` on the notebook each time,
which covers editors without such a hook (VS Code).
"""

import os
import subprocess
import time


def _git(args, cwd):
    return subprocess.run(["git"] + args, cwd=cwd, capture_output=True, text=True)


def refresh(path):
    """Refresh git's record of `path` if only what the filter removes has changed; True if it did."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        if _git(["ls-files", "--error-unmatch", "--", name], folder).returncode != 0:
            return False  # not in a git clone, or not tracked
        if _git(["diff", "--quiet", "--", name], folder).returncode != 0:
            return False  # a real change (or the filter failed): leave it to the user
        for attempt in range(10):
            result = _git(["add", "--", name], folder)
            if result.returncode == 0 or "index.lock" not in result.stderr:
                return result.returncode == 0
            time.sleep(0.2 * (attempt + 1))  # another git command (git status, an editor's) holds the index
        return False
    except OSError:  # no git
        return False


def post_save(model=None, os_path=None, contents_manager=None, **kwargs):
    """Jupyter's post-save hook (see _load_jupyter_server_extension)."""
    if os_path and os_path.endswith(".ipynb"):
        refresh(os_path)


def _jupyter_server_extension_points():
    return [{"module": "sheet05.gitindex"}]


def _load_jupyter_server_extension(serverapp):
    """Register post_save with the server's contents manager (register_post_save_hook adds it
    to the save hooks; setting the post_save_hook option would replace another one)."""
    serverapp.contents_manager.register_post_save_hook(post_save)
