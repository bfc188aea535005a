"""Working in the notebook leaves git clean and the export's cache valid.

./export.sh sets up nbstripout as git's filter for the notebook (.gitattributes names it), so
git sees the notebook without outputs, execution counts and editor metadata, and a post-save
hook for Jupyter (sheet05/gitindex.py) that refreshes git's record of the file, which git
would otherwise report as modified because its size changed. The committed notebook is in
the filter's own form, so a fresh clone starts clean. The main test runs a real JupyterLab
server on a clone: a kernel session on the notebook, cells run through the kernel's
websocket, the result saved through the contents API as JupyterLab saves it; afterwards
`git status --porcelain` is empty and the export's cache key is unchanged.
"""

import ast
import asyncio
import datetime
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import nbformat
import pytest

from conftest import REPO, committed_text, copy_of_repo, is_git_checkout
from sheet05 import export, gitindex, setup

NOTEBOOK = "exercise_sheet.ipynb"


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


def stripped(text: str) -> str:
    """The notebook as the filter gives it to git."""
    return subprocess.run([sys.executable, "-m", "nbstripout", "--extra-keys", setup.NOTEBOOK_FILTER_EXTRA_KEYS],
                          input=text, capture_output=True, text=True, check=True, cwd="/").stdout


def test_the_committed_notebook_is_in_the_filters_form():
    """Else a fresh clone would show it as modified as soon as the filter is set up. The
    committed notebook, not the working copy: that one has outputs once it is saved in Jupyter."""
    text = committed_text(NOTEBOOK)
    if not is_git_checkout() and json.loads(text)["cells"] != json.loads(stripped(text))["cells"]:
        pytest.skip("not a git clone, and the notebook has been saved with outputs: what was shipped is unknown")
    assert stripped(text) == text, ("the committed exercise_sheet.ipynb is not in nbstripout's form: commit it "
                                    "again with the filter set up (./export.sh sets it up)")


def test_gitattributes_send_the_notebook_through_the_filter():
    lines = (REPO / ".gitattributes").read_text().splitlines()
    assert "*.ipynb filter=nbstripout diff=ipynb" in lines
    keys = dict(setup.NOTEBOOK_FILTER)
    assert keys["filter.nbstripout.clean"] == ".venv/bin/python -m nbstripout"   # relative: a moved clone works
    assert "filter.nbstripout.required" not in keys   # a broken .venv must not lock git


def test_first_code_cell_is_imports_and_one_call():
    nb = nbformat.read(REPO / NOTEBOOK, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert len(first.source.splitlines()) <= 10, first.source
    body = ast.parse(first.source).body
    calls = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    assert len(calls) == 1 and isinstance(calls[0], ast.Expr) and isinstance(calls[0].value, ast.Call), first.source


@pytest.fixture
def clone(tmp_path):
    """A git clone of the working tree with the filter set up as ./export.sh sets it up."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = copy_of_repo(tmp_path / "clone")
    git(root, "init", "-q")
    assert setup.install_notebook_filter(str(root), log=lambda *_: None)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "clone")
    assert git(root, "status", "--porcelain") == ""
    return root


def test_set_up_is_idempotent_and_only_in_a_clone(clone, tmp_path):
    said = []
    assert setup.install_notebook_filter(str(clone), log=said.append) and said == []   # in place already
    assert git(clone, "config", "--local", "filter.nbstripout.clean") .strip() == ".venv/bin/python -m nbstripout"
    plain = tmp_path / "zip"
    plain.mkdir()
    assert setup.install_notebook_filter(str(plain), log=said.append) is False and said == []


def test_saved_with_outputs_and_metadata_git_sees_no_change(clone):
    """A save with outputs, as VS Code or Jupyter writes it: git's filter sees no change, and
    refreshing git's record (Jupyter's hook, ./export.sh) clears `git status`; a real edit
    stays a change."""
    import test_cache

    path = clone / NOTEBOOK
    key = export.notebook_key(path, clone)
    test_cache.saved_by_an_editor(path)
    assert "run 1" in path.read_text(encoding="utf-8")
    assert git(clone, "diff") == ""
    assert export.notebook_key(path, clone) == key
    # git compares sizes first: without the refresh it would list the file as modified
    assert gitindex.refresh(path) is True
    assert git(clone, "status", "--porcelain") == ""
    assert git(clone, "diff", "--cached") == ""               # nothing was staged
    nb = nbformat.read(path, as_version=4)     # a real edit still shows, and is not staged
    nb.cells[0].source += "\n\nAn edit."
    nbformat.write(nb, path)
    assert gitindex.refresh(path) is False
    assert git(clone, "status", "--porcelain") == f" M {NOTEBOOK}\n"
    assert export.notebook_key(path, clone) != key


def test_refresh_outside_a_clone_does_nothing(tmp_path):
    (tmp_path / NOTEBOOK).write_text("{}")
    assert gitindex.refresh(tmp_path / NOTEBOOK) is False


# --------------------------------------------------------------------------- JupyterLab


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`jupyter lab` from .venv, serving `root` on a free local port with a random token."""

    def __init__(self, root):
        hook = os.path.join(sys.prefix, setup.JUPYTER_HOOK_CONFIG)
        if not os.path.isfile(hook):
            pytest.fail(f"{hook} is missing: run ./export.sh --setup-only (it sets up Jupyter's save hook)")
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.log = open(root.parent / "jupyter.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
             f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={self.token}", "--allow-root"],
            cwd=root, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                self.request("GET", "/api/status")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start; log: {self.log.name}") from None
                time.sleep(0.5)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def close(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def message(msg_type, content, session):
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "student",
                       "session": session, "version": "5.3",
                       "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}


async def run_in_kernel(server, kernel_id, sources):
    """Execute each source in the kernel as JupyterLab does (through the server's websocket);
    return the kernel's language_info and, per source, (outputs, execution count)."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels"
                                 f"?token={server.token}")
    session = uuid.uuid4().hex

    async def reply_to(msg):
        # The shell reply and the iopub "idle" status travel on different channels, and the
        # server forwards them in either order: wait for both, whichever comes first.
        await ws.write_message(json.dumps(msg))
        outputs, count, reply, idle = [], None, None, False
        while True:
            raw = await asyncio.wait_for(ws.read_message(), timeout=300)
            assert raw is not None, "the kernel's websocket closed"
            got = json.loads(raw)
            if got.get("parent_header", {}).get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, content = got["header"]["msg_type"], got["content"]
            if kind == "status":
                assert content["execution_state"] != "dead", "the kernel died"
                idle = idle or content["execution_state"] == "idle"
            if got["channel"] == "shell":
                reply = content
            elif kind == "stream":
                outputs.append(nbformat.v4.new_output("stream", name=content["name"], text=content["text"]))
            elif kind in ("display_data", "execute_result"):
                outputs.append(nbformat.v4.new_output("display_data", data=content["data"],
                                                      metadata=content["metadata"]))
            elif kind == "error":
                raise AssertionError(f"cell failed: {content['ename']}: {content['evalue']}")
            elif kind == "execute_input":
                count = content["execution_count"]
            if reply is not None and idle:
                return reply, outputs, count
            if reply is not None and got["channel"] == "shell" and msg["header"]["msg_type"] == "kernel_info_request":
                return reply, outputs, count

    info, _, _ = await reply_to(message("kernel_info_request", {}, session))
    results = []
    for source in sources:
        reply, outputs, count = await reply_to(message("execute_request", {
            "code": source, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True}, session))
        assert reply["status"] == "ok", reply
        results.append((outputs, count))
    ws.close()
    return info["language_info"], results


def test_jupyterlab_run_and_save_leaves_git_clean_and_the_cache_valid(clone):
    path = clone / NOTEBOOK
    key = export.notebook_key(path, clone)
    head = path.read_bytes()
    server = Server(clone)
    try:
        session = server.request("POST", "/api/sessions", {"path": NOTEBOOK, "type": "notebook", "name": NOTEBOOK,
                                                           "kernel": {"name": "python3"}})
        model = server.request("GET", f"/api/contents/{NOTEBOOK}?content=1")
        nb = nbformat.from_dict(model["content"])
        code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"][:2]   # the set-up and 1(a), 1(b)
        language_info, results = asyncio.run(run_in_kernel(server, session["kernel"]["id"],
                                                           [nb.cells[i].source for i in code]))
        assert any("1(a)" in o.get("text", "") for o in results[1][0]), results[1][0]
        # What JupyterLab writes on saving: outputs, counts, the running kernel and its language
        for i, (outputs, count) in zip(code, results):
            nb.cells[i].outputs, nb.cells[i].execution_count = outputs, count
            nb.cells[i].metadata["execution"] = {"shell.execute_reply": "2026-12-01T08:00:00.000Z"}
        nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = language_info
        server.request("PUT", f"/api/contents/{NOTEBOOK}", {"type": "notebook", "format": "json", "content": nb})
        server.request("DELETE", f"/api/sessions/{session['id']}")
    finally:
        server.close()
    log = (clone.parent / "jupyter.log").read_text()
    assert "sheet05.gitindex | extension was successfully loaded" in log
    assert "Warning" not in log, log  # no "Overriding existing post_save_hook" at every start
    saved = path.read_text(encoding="utf-8")
    assert path.read_bytes() != head and "1(a) max" in saved and language_info["version"] in saved
    assert git(clone, "status", "--porcelain") == ""
    assert export.notebook_key(path, clone) == key
