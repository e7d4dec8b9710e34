"""The project's own registries, on fairseq's pattern: register a class by name with a dataclass config, build it
by name. fairseq's registries cover tasks, models and criteria; the pieces *inside* our models (visual
backbones, …) are swapped here, so a new backbone is a new file plus a ``@register_visual_backbone``."""

from registry.core import Registry, RegistryError

VISUAL_BACKBONES = Registry("visual backbone", discover="slt_plugins")
register_visual_backbone = VISUAL_BACKBONES.register
build_visual_backbone = VISUAL_BACKBONES.build

__all__ = [
    "Registry",
    "RegistryError",
    "VISUAL_BACKBONES",
    "register_visual_backbone",
    "build_visual_backbone",
]
