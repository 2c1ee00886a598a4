"""Which files of a directory are manifests: a ConfigMap volume (how deploy/ gives the
data plane its manifests) holds each file twice, as ``x.yaml`` and in a hidden
``..<timestamp>/`` directory; only the visible one is read (and the watch looks only at
those)."""

from __future__ import annotations

from pathlib import Path

from eventing.resources.loader import manifest_files
from eventing.resources.watch import stamp


def test_a_configmap_volume_is_read_once(tmp_path: Path) -> None:
    real = tmp_path / "..2026_12_04_12_00_00.000000001"
    real.mkdir()
    (real / "system.yaml").write_text("kind: Broker\n")
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "system.yaml").symlink_to("..data/system.yaml")
    (tmp_path / ".system.yaml.swp").write_text("")
    assert manifest_files(tmp_path) == [tmp_path / "system.yaml"]
    assert list(stamp(tmp_path)) == [str(tmp_path / "system.yaml")]


def test_the_watch_sees_a_configmap_update(tmp_path: Path) -> None:
    """The kubelet writes a new hidden directory and swaps ``..data`` to it."""
    first = tmp_path / "..1"
    first.mkdir()
    (first / "system.yaml").write_text("kind: Broker\n")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "system.yaml").symlink_to("..data/system.yaml")
    before = stamp(tmp_path)
    second = tmp_path / "..2"
    second.mkdir()
    (second / "system.yaml").write_text("kind: Broker\n---\nkind: Trigger\n")
    (tmp_path / "..data_tmp").symlink_to(second.name)
    (tmp_path / "..data_tmp").replace(tmp_path / "..data")
    assert stamp(tmp_path) != before
