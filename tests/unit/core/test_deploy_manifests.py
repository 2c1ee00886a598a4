"""The resources each deploy/ overlay puts into the data plane's directory (the
``eventing-resources`` ConfigMap mounted at /etc/eventing) load as ``eventing run
--kubernetes /etc/eventing`` loads them: valid Broker, valid broker-class config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from eventing.app.registry import kind_registry
from eventing.resources.loader import load_resources
from eventing.resources.refs import Platform

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())


def _generated_files(overlay: Path) -> list[Path]:
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text(encoding="utf-8"))
    (generator,) = (
        g for g in kustomization["configMapGenerator"] if g["name"] == "eventing-resources"
    )
    return [overlay / name for name in generator["files"]]


def test_every_broker_class_has_an_overlay() -> None:
    assert OVERLAYS == ["embedded", "kafka", "rabbitmq"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_resources_load_for_kubernetes(overlay: str, tmp_path: Path) -> None:
    for path in _generated_files(DEPLOY / "overlays" / overlay):
        shutil.copy(path, tmp_path / path.name)
    loaded = load_resources(
        tmp_path, kind_registry(), local=False, platform=Platform(kubernetes=True)
    )
    brokers = [r for r in loaded.resources if r.KIND == "Broker"]
    assert [b.metadata.name for b in brokers] == ["default"]
