"""The project's own registries, on fairseq's pattern: register a class by name with a dataclass config, build it
by name. fairseq's registries cover tasks, models and criteria; the pieces *inside* our models (visual backbones,
visual-language mappers, the sequence models of the distillation students) are swapped here, so a new backbone is a
new file plus a ``@register_visual_backbone``."""

from fairseq_slt.registry.core import Registry, RegistryError

VISUAL_BACKBONES = Registry("visual backbone", discover="slt_plugins")
register_visual_backbone = VISUAL_BACKBONES.register
build_visual_backbone = VISUAL_BACKBONES.build

VL_MAPPERS = Registry("visual-language mapper", discover="slt_plugins")
register_vl_mapper = VL_MAPPERS.register
build_vl_mapper = VL_MAPPERS.build

SEQUENCE_MODELS = Registry("sequence model", discover="slt_plugins")
register_sequence_model = SEQUENCE_MODELS.register
build_sequence_model = SEQUENCE_MODELS.build

__all__ = [
    "Registry",
    "RegistryError",
    "VISUAL_BACKBONES",
    "register_visual_backbone",
    "build_visual_backbone",
    "VL_MAPPERS",
    "register_vl_mapper",
    "build_vl_mapper",
    "SEQUENCE_MODELS",
    "register_sequence_model",
    "build_sequence_model",
]
