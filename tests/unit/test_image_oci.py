"""The OCI packing without a root filesystem: digests, document shapes and a deterministic layer.

`make image` packs a whole Debian tree and reads it back with skopeo and umoci, but it is slow and
needs root; these pin the parts that make the layout valid and reproducible on small trees.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import tarfile

from image import dockerfile, oci

RUNTIME = dockerfile.Runtime(
    user="65532:65532",
    entrypoint=("roadie",),
    cmd=("run",),
    env=(("PATH", "/opt/roadie/bin:/usr/bin"), ("HOME", "/tmp")),
    working_dir="/tmp",
    labels=(("org.opencontainers.image.version", "0.1.0"),),
    base="python:3.11-slim-bookworm",
)


def tree(root: pathlib.Path) -> pathlib.Path:
    (root / "opt/roadie/bin").mkdir(parents=True)
    (root / "opt/roadie/bin/roadie").write_text("#!/opt/roadie/bin/python\n")
    (root / "opt/roadie/bin/roadie").chmod(0o755)
    (root / "opt/roadie/bin/python").symlink_to("/usr/bin/python3")
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.link(root / "etc/passwd", root / "etc/passwd-")
    (root / "dev").mkdir()
    (root / "dev/null").write_text("not a device, but under dev/")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return root


def pack(root: pathlib.Path, epoch: int = 1_700_000_000) -> tuple[oci.Layer, bytes]:
    out = io.BytesIO()
    layer = oci.write_layer(root, out, epoch=epoch)
    return layer, out.getvalue()


def test_digest_and_descriptor() -> None:
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert oci.digest(b"") == empty
    descriptor = oci.Descriptor.of(oci.CONFIG_TYPE, b"{}", annotations=(("a", "b"),))
    assert descriptor.to_json() == {
        "mediaType": oci.CONFIG_TYPE,
        "digest": oci.digest(b"{}"),
        "size": 2,
        "annotations": {"a": "b"},
    }


def test_canonical_json_is_sorted_and_compact() -> None:
    assert oci.canonical({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == b'{"a":[1,{"c":3,"d":2}],"b":1}'


def test_config_carries_the_runtime_and_the_diff_ids() -> None:
    config = oci.config(RUNTIME, ["sha256:abc"], epoch=0)
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:abc"]}
    assert config["config"] == {
        "User": "65532:65532",
        "Env": ["PATH=/opt/roadie/bin:/usr/bin", "HOME=/tmp"],
        "Entrypoint": ["roadie"],
        "Cmd": ["run"],
        "WorkingDir": "/tmp",
        "Labels": {"org.opencontainers.image.version": "0.1.0"},
    }
    assert len(config["history"]) == 1


def test_manifest_and_index_shapes() -> None:
    config = oci.Descriptor.of(oci.CONFIG_TYPE, b"{}")
    layer = oci.Descriptor(oci.LAYER_TYPE, "sha256:" + "0" * 64, 10)
    manifest = oci.manifest(config, [layer], {"org.opencontainers.image.version": "0.1.0"})
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == oci.MANIFEST_TYPE
    assert manifest["config"]["mediaType"] == oci.CONFIG_TYPE
    assert [entry["mediaType"] for entry in manifest["layers"]] == [oci.LAYER_TYPE]
    index = oci.index([oci.Descriptor.of(oci.MANIFEST_TYPE, b"m", annotations=((oci.REF_NAME, "0.1.0"),))])
    assert index["mediaType"] == oci.INDEX_TYPE
    assert index["manifests"][0]["annotations"] == {oci.REF_NAME: "0.1.0"}


def test_walk_lists_parents_first_in_byte_order_and_skips_runtime_mounts(tmp_path: pathlib.Path) -> None:
    root = tree(tmp_path / "root")
    (root / "opt/Z").write_text("")
    paths = list(oci.walk(root))
    assert paths == [
        "dev",
        "etc",
        "etc/passwd",
        "etc/passwd-",
        "opt",
        "opt/Z",
        "opt/roadie",
        "opt/roadie/bin",
        "opt/roadie/bin/python",
        "opt/roadie/bin/roadie",
        "tmp",
    ]


def test_layer_entries_are_normalised(tmp_path: pathlib.Path) -> None:
    layer, data = pack(tree(tmp_path / "root"), epoch=1234)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert layer.entries == len(members) == 10
    assert {member.mtime for member in members.values()} == {1234}
    assert {(member.uname, member.gname) for member in members.values()} == {("", "")}
    assert members["opt/roadie/bin/roadie"].mode == 0o755
    assert members["tmp"].mode == 0o1777
    assert members["opt/roadie/bin/python"].issym()
    assert members["opt/roadie/bin/python"].linkname == "/usr/bin/python3"
    assert members["etc/passwd-"].islnk() and members["etc/passwd-"].linkname == "etc/passwd"
    assert "dev/null" not in members and members["dev"].isdir()


def test_layer_digests_name_the_bytes(tmp_path: pathlib.Path) -> None:
    layer, data = pack(tree(tmp_path / "root"))
    assert layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.size == len(data)
    assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    # gzip header: no file name flag, no modification time
    assert data[3] & 0x08 == 0 and data[4:8] == b"\0\0\0\0"


def test_layer_is_deterministic(tmp_path: pathlib.Path) -> None:
    first = tree(tmp_path / "first")
    second = tree(tmp_path / "second")
    os.utime(second / "etc/passwd", (1, 1))
    (second / "opt/roadie/bin/roadie").touch()
    assert pack(first) == pack(second)
    (second / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    assert pack(first)[0].digest != pack(second)[0].digest


def test_write_layout_is_a_valid_oci_layout(tmp_path: pathlib.Path) -> None:
    root = tree(tmp_path / "root")
    layout = tmp_path / "oci"
    layout.mkdir()
    layer_file = layout / "layer.partial"
    with layer_file.open("wb") as out:
        layer = oci.write_layer(root, out, epoch=0)
    descriptor = oci.write_layout(
        layout, layer_file=layer_file, layer=layer, runtime=RUNTIME, epoch=0, ref_name="0.1.0", annotations={}
    )
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert not layer_file.exists()
    blobs = layout / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == "sha256:" + blob.name
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"] == [descriptor.to_json()]
    assert descriptor.to_json()["annotations"] == {oci.REF_NAME: "0.1.0"}
    manifest = json.loads((blobs / descriptor.digest.removeprefix("sha256:")).read_bytes())
    assert manifest["layers"] == [{"mediaType": oci.LAYER_TYPE, "digest": layer.digest, "size": layer.size}]
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    assert config["rootfs"]["diff_ids"] == [layer.diff_id]
    assert config["config"]["Entrypoint"] == ["roadie"] and config["config"]["User"] == "65532:65532"
