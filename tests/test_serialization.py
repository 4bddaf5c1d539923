"""nn.save / nn.load: one .npz, no pickle, atomic writes, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest

import nn


def make_net():
    return nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1))


def test_round_trip_keeps_every_array_and_the_metadata(tmp_path):
    net = make_net()
    path = tmp_path / "model.npz"
    nn.save(net, path, metadata={"epoch": 3, "test_accuracy": 0.99, "note": "ünïcode"})
    state, metadata = nn.load(path)
    assert metadata == {"epoch": 3, "test_accuracy": 0.99, "note": "ünïcode"}
    assert list(state) == list(net.state_dict())
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(state[key], value)
        assert state[key].dtype == value.dtype


def test_saved_file_gets_ordinary_permissions(tmp_path):
    path = tmp_path / "model.npz"
    nn.save(make_net(), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_file_is_readable_without_pickle_and_metadata_is_json(tmp_path):
    path = tmp_path / "model.npz"
    nn.save(make_net().state_dict(), path, metadata={"a": [1, 2]})
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["__metadata__"])) == {"a": [1, 2]}
        assert archive["0.weight"].shape == (3, 4)


def test_plain_npz_of_arrays_loads_with_empty_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, **{"w": np.ones(3)})
    state, metadata = nn.load(path)
    assert metadata == {} and list(state) == ["w"]


def test_save_replaces_atomically_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    nn.save(make_net(), path, metadata={"version": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        nn.save(make_net(), path, metadata={"version": 2})
    assert nn.load(path)[1] == {"version": 1}  # the old file is intact
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("content,says", [
    (b"", "this file is empty"),
    (b"# LeNet5 from scratch\n\nA deep-learning framework", "text file (it begins '# LeNet5 from scratch')"),
    ("caf\u00e9 au lait, ".encode() * 3, "text file (it begins 'caf\u00e9 au lait"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "begins with the bytes b'\\x89PNG"),
    (b"\x80\x04\x95" + bytes(40), "looks like a pickle"),
])
def test_a_file_that_is_not_a_zip_says_what_it_is_and_never_suggests_unpickling(tmp_path, content, says):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as caught:
        nn.load(path)
    message = str(caught.value)
    assert "not a model file written by nn.save (an .npz, which is a zip archive)" in message
    assert says in message
    assert "allow_pickle" not in message


def test_a_single_npy_array_is_refused_clearly(tmp_path):
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="single NumPy array"):
        nn.load(path)


@pytest.mark.parametrize("members,says", [
    ({"archive/data.pkl": b"\x80\x02}q\x00.", "archive/version": b"3"},
     "archive/data.pkl, archive/version are not NumPy .npy entries; it looks like a PyTorch file"),
    ({"notes.txt": b"hello"}, "notes.txt is not a NumPy .npy entry"),
])
def test_a_zip_of_other_things_than_arrays_names_its_foreign_entries(tmp_path, members, says):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    with pytest.raises(ValueError, match="zip archive but not an .npz of arrays") as caught:
        nn.load(path)
    assert says in str(caught.value)


def test_an_npy_entry_that_is_not_an_array_is_reported_not_returned(tmp_path):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", b"junk")
    with pytest.raises(ValueError, match="entry w is not a NumPy array"):
        nn.load(path)


def test_truncated_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "model.npz"
    nn.save(make_net(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable model file"):
        nn.load(path)


def test_pickled_object_arrays_are_refused_without_suggesting_to_unpickle_them(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, w=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="entry w holds Python objects") as caught:
        nn.load(path)
    assert "allow_pickle" not in str(caught.value)


def test_corrupted_metadata_is_reported(tmp_path):
    path = tmp_path / "model.npz"
    with zipfile.ZipFile(path, "w") as z:
        with z.open("__metadata__.npy", "w") as f:
            np.lib.format.write_array(f, np.array("{not json"))
    with pytest.raises(ValueError, match="__metadata__ entry is not JSON"):
        nn.load(path)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="JSON"):
        nn.save(make_net(), tmp_path / "m.npz", metadata={"x": float("nan")})
    with pytest.raises(ValueError, match="reserved"):
        nn.save({"__metadata__": np.zeros(1)}, tmp_path / "m.npz")
    with pytest.raises(TypeError, match="Module or a mapping"):
        nn.save([1, 2], tmp_path / "m.npz")
