from argparse import Namespace
from dataclasses import dataclass

import pytest
import torch.nn as nn

from fairseq_slt.registry import VISUAL_BACKBONES, Registry, RegistryError


@dataclass
class ToyConfig:
    channels: int = 8
    frozen_blocks: int = 0


def make_registry():
    reg = Registry("visual backbone", base_class=nn.Module)

    @reg.register("toy", dataclass=ToyConfig)
    class Toy(nn.Module):
        def __init__(self, cfg: ToyConfig):
            super().__init__()
            self.cfg = cfg
            self.proj = nn.Linear(3, cfg.channels)

    return reg, Toy


def test_build_by_name_with_defaults_and_overrides():
    reg, toy = make_registry()
    model = reg.build("toy")
    assert isinstance(model, toy) and model.proj.out_features == 8
    assert reg.build("toy", {"channels": 4}).proj.out_features == 4
    assert reg.build("toy", ToyConfig(channels=2), frozen_blocks=1).cfg == ToyConfig(2, 1)


def test_build_from_a_model_namespace_reads_only_own_fields():
    reg, _ = make_registry()
    args = Namespace(channels=16, arch="whatever", lr=[0.1])
    assert reg.build("toy", args).cfg == ToyConfig(channels=16)


def test_unknown_name_lists_known_names():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match=r"unknown visual backbone 'nope'; known names: toy"):
        reg.build("nope")


def test_unknown_option_lists_the_options():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match=r"has no option 'width'; its options: channels, frozen_blocks"):
        reg.build("toy", width=3)


def test_duplicate_name_and_wrong_base_are_refused():
    reg, _ = make_registry()
    with pytest.raises(RegistryError, match="the name is taken"):
        reg.register("toy", dataclass=ToyConfig)(type("Other", (nn.Module,), {}))
    with pytest.raises(RegistryError, match="must subclass Module"):
        reg.register("plain")(type("Plain", (), {}))
    with pytest.raises(RegistryError, match="must be a dataclass"):
        reg.register("bad", dataclass=dict)(type("Bad", (nn.Module,), {}))


def test_from_config_is_preferred_and_empty_config_is_allowed():
    reg = Registry("thing")

    @reg.register("made")
    class Made:
        def __init__(self, tag):
            self.tag = tag

        @classmethod
        def from_config(cls, cfg):
            return cls(tag="from_config")

    assert reg.build("made").tag == "from_config"
    assert reg.names() == ["made"] and "made" in reg


def test_visual_backbone_registry_discovers_the_plugin():
    """Asking the project's registry for names imports slt_plugins, which registers the built-in backbones."""
    import sys

    names = VISUAL_BACKBONES.names()
    assert "slt_plugins" in sys.modules
    assert {"s3d", "cnn_tconv"} <= set(names) and names == sorted(names)
