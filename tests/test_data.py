"""The data plumbing of exercise 2: manifest, verified fetch, refusal of bad files, loader, split."""

import hashlib
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sheet05 import data
from sheet05.data import DataError


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def make_mirror(root: Path, files: dict[str, bytes]) -> dict[str, str]:
    """Write `files` under `root`; return their manifest (path -> sha256)."""
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    return {rel: sha(content) for rel, content in files.items()}


def tensor_bytes(t: torch.Tensor, tmp_path: Path) -> bytes:
    path = tmp_path / "t.pt"
    torch.save(t, path)
    return path.read_bytes()


class CodeOnLoad:
    """A pickle payload that touches a marker file when unpickled (harmless stand-in for malware)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


# --------------------------------------------------------------------------- manifest


def test_manifest_lists_the_154_course_files():
    manifest = data.read_manifest()
    assert len(manifest) == 154
    csvs = [p for p in manifest if p.endswith(".csv")]
    assert sorted(csvs) == [f"datasets/{n}.csv" for n in sorted(data.DATASETS)]
    per_dataset = {n: sum(p.startswith(f"acts/Llama3/8B/chat/{n}/layer_12_") for p in manifest) for n in data.DATASETS}
    assert per_dataset == {"cities": 60, "neg_cities": 60, "sp_en_trans": 15, "neg_sp_en_trans": 15}
    assert all(len(h) == 64 for h in manifest.values())


def test_manifest_rejects_malformed_line(tmp_path):
    bad = tmp_path / "m.sha256"
    bad.write_text("not-a-hash  datasets/cities.csv\n")
    with pytest.raises(DataError, match="m.sha256:1"):
        data.read_manifest(bad)


# --------------------------------------------------------------------------- fetch


def test_fetch_copies_and_verifies_from_mirror(tmp_path):
    manifest = make_mirror(tmp_path / "mirror", {"datasets/a.csv": b"statement,label\nx,1\n", "acts/b.pt": b"\x00" * 1000})
    counts = data.fetch(tmp_path / "dest", mirror=tmp_path / "mirror", manifest=manifest, allow_download=False)
    assert counts == {"present": 0, "mirror": 2, "download": 0}
    assert (tmp_path / "dest/acts/b.pt").read_bytes() == b"\x00" * 1000
    # second run keeps what is there
    counts = data.fetch(tmp_path / "dest", mirror=tmp_path / "mirror", manifest=manifest, allow_download=False)
    assert counts == {"present": 2, "mirror": 0, "download": 0}


@pytest.mark.parametrize("damage", ["corrupt", "truncate", "missing"])
def test_fetch_refuses_bad_mirror_file_and_names_it(tmp_path, damage):
    good = {"datasets/a.csv": b"statement,label\nx,1\n", "acts/x/layer_12_0.pt": bytes(range(256)) * 40}
    manifest = make_mirror(tmp_path / "mirror", good)
    target = tmp_path / "mirror/acts/x/layer_12_0.pt"
    if damage == "corrupt":
        raw = bytearray(target.read_bytes()); raw[5000] ^= 0xFF; target.write_bytes(bytes(raw))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:4000])
    else:
        target.unlink()
    with pytest.raises(DataError, match="layer_12_0.pt"):
        data.fetch(tmp_path / "dest", mirror=tmp_path / "mirror", manifest=manifest, allow_download=False)
    dest_dir = tmp_path / "dest/acts/x"
    # nothing half-written under the real name, and no temporary left behind
    assert not (dest_dir / "layer_12_0.pt").exists()
    assert not list(dest_dir.glob("*.part")) if dest_dir.exists() else True


def test_corrupt_local_file_is_replaced_from_mirror(tmp_path):
    manifest = make_mirror(tmp_path / "mirror", {"acts/b.pt": b"good bytes"})
    (tmp_path / "dest/acts").mkdir(parents=True)
    (tmp_path / "dest/acts/b.pt").write_bytes(b"bad bytes!")
    messages = []
    counts = data.fetch(tmp_path / "dest", mirror=tmp_path / "mirror", manifest=manifest,
                        allow_download=False, log=messages.append)
    assert counts["mirror"] == 1 and (tmp_path / "dest/acts/b.pt").read_bytes() == b"good bytes"
    assert any("b.pt" in m and "checksum" in m for m in messages)


def test_missing_file_without_any_source_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LIE_DETECTION_MIRROR", raising=False)
    with pytest.raises(DataError, match="missing .*a.csv"):
        data.fetch(tmp_path / "dest", mirror=None, manifest={"a.csv": "0" * 64}, allow_download=False)


def test_mirror_that_is_not_a_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match="LIE_DETECTION_MIRROR"):
        data.fetch(tmp_path / "dest", mirror=tmp_path / "nope", manifest={}, allow_download=False)


def test_verify_names_every_bad_file(tmp_path, course_data):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(course_data, copy)
    (copy / "datasets/cities.csv").write_text("tampered")
    (copy / "acts/Llama3/8B/chat/sp_en_trans/layer_12_0.pt").unlink()
    with pytest.raises(DataError) as err:
        data.verify(copy)
    assert "checksum mismatch" in str(err.value) and "cities.csv" in str(err.value)
    assert "missing" in str(err.value) and "sp_en_trans/layer_12_0.pt" in str(err.value)


# --------------------------------------------------------------------------- loader


def test_loader_shapes_labels_and_rows(course_data):
    sizes = {"cities": 1496, "neg_cities": 1496, "sp_en_trans": 354, "neg_sp_en_trans": 354}
    for name, n in sizes.items():
        d = data.load_dataset(name, course_data)
        assert d.X.shape == (n, 4096) and d.X.dtype == np.float32
        assert d.y.shape == (n,) and set(np.unique(d.y)) == {0, 1}
        assert d.y.sum() == n // 2  # balanced
        assert len(d.statements) == n and np.isfinite(d.X).all()
    d = data.load_dataset("cities", course_data)
    assert d.statements[0] == "The city of Krasnodar is in Russia." and d.y[0] == 1
    assert d.statements[1] == "The city of Krasnodar is in South Africa." and d.y[1] == 0


def fake_layout(root: Path, tmp_path: Path, rows=(3, 2), family="Fake", size="1B", kind="base",
                layer=3, name="toy", values=None):
    """A small dataset in the course layout, for any family/size/type/layer."""
    n = sum(rows)
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    lines = ["statement,label"] + [f"s{i},{i % 2}" for i in range(n)]
    (root / f"datasets/{name}.csv").write_text("\n".join(lines) + "\n")
    act = root / "acts" / family / size / kind / name
    act.mkdir(parents=True, exist_ok=True)
    full = torch.arange(n * 4, dtype=torch.float32).reshape(n, 4) if values is None else values
    start = 0
    for r in rows:
        torch.save(full[start:start + r].clone(), act / f"layer_{layer}_{start}.pt")
        start += r
    return act


def test_loader_works_for_any_family_size_type_and_layer(tmp_path):
    fake_layout(tmp_path / "d", tmp_path, rows=(3, 3, 1))
    d = data.load_dataset("toy", tmp_path / "d", family="Fake", size="1B", model_type="base", layer=3)
    assert d.X.shape == (7, 4)
    np.testing.assert_array_equal(d.X[:, 0], np.arange(7) * 4)  # chunks concatenated in index order
    np.testing.assert_array_equal(d.y, [0, 1, 0, 1, 0, 1, 0])


def test_loader_refuses_row_mismatch_nan_and_missing(tmp_path):
    act = fake_layout(tmp_path / "a", tmp_path, rows=(3, 2))
    (act / "layer_3_3.pt").unlink()
    with pytest.raises(DataError, match="3 activation rows but 5 rows"):
        data.load_dataset("toy", tmp_path / "a", family="Fake", size="1B", model_type="base", layer=3)

    bad = torch.zeros(5, 4); bad[2, 1] = float("nan")
    fake_layout(tmp_path / "b", tmp_path, rows=(5,), values=bad)
    with pytest.raises(DataError, match="NaN"):
        data.load_dataset("toy", tmp_path / "b", family="Fake", size="1B", model_type="base", layer=3)

    with pytest.raises(DataError, match="no files"):
        data.load_dataset("toy", tmp_path / "b", family="Fake", size="1B", model_type="base", layer=7)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_runs_code_is_refused(tmp_path):
    """Checksums refuse it in fetch, and weights_only=True refuses it in the loader."""
    marker = tmp_path / "pwned"
    payload = pickle.dumps(CodeOnLoad(marker))
    evil = tmp_path / "evil.pt"
    torch.save({"x": 1}, evil)  # then overwrite with a raw pickle carrying the payload
    evil.write_bytes(payload)

    manifest = make_mirror(tmp_path / "mirror", {"acts/ok.pt": b"fine"})
    (tmp_path / "mirror/acts/ok.pt").write_bytes(payload)
    with pytest.raises(DataError, match="ok.pt"):
        data.fetch(tmp_path / "dest", mirror=tmp_path / "mirror", manifest=manifest, allow_download=False)

    act = fake_layout(tmp_path / "d", tmp_path, rows=(2,))
    (act / "layer_3_0.pt").write_bytes(evil.read_bytes())
    fake = tmp_path / "d/datasets/toy.csv"
    fake.write_text("statement,label\na,1\nb,0\n")
    with pytest.raises(DataError, match="refused .*layer_3_0.pt"):
        data.load_dataset("toy", tmp_path / "d", family="Fake", size="1B", model_type="base", layer=3,
                          check_manifest=False)
    assert not marker.exists(), "the pickle's code ran"


def test_loader_refuses_course_file_with_wrong_checksum(tmp_path, course_data):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(course_data, copy)
    f = copy / "acts/Llama3/8B/chat/sp_en_trans/layer_12_25.pt"
    raw = bytearray(f.read_bytes()); raw[-100] ^= 1; f.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="layer_12_25.pt: checksum mismatch"):
        data.load_dataset("sp_en_trans", copy)


# --------------------------------------------------------------------------- split


def test_split_is_seeded_stratified_and_leaves_global_rng_alone():
    X = np.arange(200, dtype=float).reshape(100, 2)
    y = np.array([0] * 50 + [1] * 50)
    np_state, torch_state, py_state = np.random.get_state(), torch.get_rng_state(), random.getstate()
    a = data.split(X, y, seed=0)
    b = data.split(X, y, seed=0)
    c = data.split(X, y, seed=1)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    X_tr, X_te, y_tr, y_te = a
    assert len(y_te) == 20 and y_te.sum() == 10 and y_tr.sum() == 40
    assert sorted(np.concatenate([X_tr[:, 0], X_te[:, 0]]).tolist()) == X[:, 0].tolist()
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
