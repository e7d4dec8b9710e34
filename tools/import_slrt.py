"""slt-import-slrt: SLRT's released SingleStream-SLT checkpoints → this toolkit's fairseq checkpoints.

SLRT (github.com/FangyunWei/SLRT, ``TwoStreamNetwork``) saves ``{'model_state': state_dict, …}`` per stage
(``experiments/outputs/SingleStream/<dataset>_{s2g,g2t,s2t}/ckpts/best.ckpt``) and reads its vocabularies from
pickles. This tool reads them without running code and writes, into ``--out``:

- ``data/``: the user's binarised dataset (``--data``, made by slt-binarise) seen through SLRT's vocabularies: links
  to its manifests, stores and ``meta.json``, and its own ``dict.gloss.txt`` (SLRT's recognition glosses in SLRT's
  order, then the translator's glosses that recognition lacks), ``dict.text.txt`` (SLRT's pruned mBART vocabulary,
  row i = pruned id i) and ``spm.model`` (mBART's sentencepiece model);
- ``s2g.pt`` (``s3d_encoder``), ``g2t.pt`` (``mbart_translator``), ``s2t.pt`` (``joint``): fairseq checkpoints
  whose task reads ``data/``, so ``fairseq-generate OUT/data --path OUT/s2t.pt …``, fine-tuning
  (``--restore-file``, ``--sign2gloss-checkpoint``, ``--gloss2text-checkpoint``) and ``slt-export`` take them as
  they take checkpoints trained here;
- ``import.json``: what was read, and per checkpoint the fairseq-train options that rebuild it (``train_options``)
  and a command that resumes from it (``fine_tune``: add an optimizer and a schedule); ``--bundle DIR`` also exports
  the most complete model as a bundle for ``slt-translate``.

What SLRT computes differently from this toolkit's defaults, and the option the imported models carry for it:

- visual head positions: OpenNMT's interleaved sin/cos from position 0 (``head_positions='opennmt'``);
- S3D input channels in BGR order (SLRT flips RGB before S3D): ``backbone_args={'bgr_input': True}``;
- the translator reads its own gloss embedding table (``translation_network.gloss_embedding``), not the text's: the
  gloss and text dictionaries are separate and the encoder's table holds SLRT's gloss rows, ``</s>`` and the source
  language token included (the ``</s> [de_DGS]`` suffix of every source comes from it);
- the source is scaled by sqrt(d_model) whatever the mBART config says (``--source-embed-scale`` where the decoder's
  scale differs);
- targets end ``</s>`` (Hugging Face's labels) and decoding starts from ``[de_DE]`` and stops at ``</s>``
  (``--stop-at-eos``);
- the classifier rows of the glosses only the translator knows are set to never win (weight 0, bias -10⁴), so the
  softmax over the union is SLRT's softmax; the translator rows of glosses only recognition knows are SLRT's
  ``<unk>`` row, which is what SLRT's gloss tokenizer maps them to.

SLRT's glosses are lower-case (its tokenizers lower-case before the lookup); the dictionaries spell each as the
dataset does (``regen`` → ``REGEN`` where the dataset's glosses are upper-case).
"""

import argparse
import json
import math
import os
import pickle
import shlex
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

#: the part of SLRT's checkpoints each stage holds
STAGE_PREFIXES = {
    "s2g": ("recognition_network.visual_backbone.", "recognition_network.visual_head."),
    "g2t": ("translation_network.model.", "translation_network.gloss_embedding."),
    "s2t": ("recognition_network.visual_head.", "translation_network.model.", "vl_mapper.mapping."),
}
HEAD = "recognition_network.visual_head."
#: SLRT VisualHead name → ours (under ``head.``)
HEAD_KEYS = {
    "fc1": "projection", "bn1.norm": "batch_norm", "feedforward.layer_norm": "temporal_conv.layer_norm",
    "feedforward.pwff_layer.0": "temporal_conv.conv_in", "feedforward.pwff_layer.3": "temporal_conv.conv_out",
    "layer_norm": "layer_norm", "gloss_output_layer": "classifier",
}
NEVER = -1e4  # the bias of a classifier row SLRT's model does not have: exp(-1e4) is 0 in float32
MBART_FILES = ("config.json", "sentencepiece.bpe.model", "gloss2ids.pkl")
MAP_FILES = ("map_ids.pkl", "old2new_vocab.pkl")  # Phoenix's and CSL-Daily's names for the pruning map


class SLRTImportError(ValueError):
    """Stops the import with one line naming the file and what was expected."""


# --- SLRT's files --------------------------------------------------------------------------------------------------

class PlainUnpickler(pickle.Unpickler):
    """Builds only what pickle's own opcodes make (dicts, lists, tuples, strings, numbers, booleans, None): any
    class or function a pickle names is refused before it could be called."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"it names {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it refers to a persistent object")


def read_plain_pickle(path: str, what: str):
    if not os.path.isfile(path):
        raise SLRTImportError(f"{path} is missing; expected SLRT's {what}")
    try:
        with open(path, "rb") as f:
            return PlainUnpickler(f).load()
    except pickle.UnpicklingError as e:
        raise SLRTImportError(f"{path}: refused, {e}: SLRT's {what} holds only plain data (strings and numbers)") \
            from None
    except Exception as e:  # truncated or not a pickle
        raise SLRTImportError(f"{path} cannot be read as a pickle ({type(e).__name__}); expected SLRT's {what}") \
            from None


def read_gloss2ids(path: str) -> List[str]:
    """SLRT's ``gloss2ids`` pickle (gloss → id, ids 0..n-1) as the list of glosses by id."""
    table = read_plain_pickle(path, "gloss2ids (a dict of gloss → id)")
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in table.items()):
        raise SLRTImportError(f"{path}: expected a dict of gloss strings to integer ids (SLRT's gloss2ids)")
    if sorted(table.values()) != list(range(len(table))):
        raise SLRTImportError(f"{path}: the ids are not 0..{len(table) - 1}, each once (SLRT's gloss2ids)")
    glosses = [""] * len(table)
    for gloss, i in table.items():
        glosses[i] = gloss
    return glosses


def read_map_ids(path: str) -> Dict[int, int]:
    table = read_plain_pickle(path, "pruned vocabulary map (a dict of mBART id → pruned id)")
    if not isinstance(table, dict) or not all(isinstance(k, int) and isinstance(v, int) for k, v in table.items()):
        raise SLRTImportError(f"{path}: expected a dict of integer mBART ids to pruned ids")
    if sorted(table.values()) != list(range(len(table))):
        raise SLRTImportError(f"{path}: the pruned ids are not 0..{len(table) - 1}, each once")
    return table


def read_slrt_checkpoint(path: str, stage: str) -> Dict[str, torch.Tensor]:
    """``model_state`` of an SLRT checkpoint of ``stage``, read with ``weights_only=True``."""
    from slt_plugins.safe_checkpoint import CheckpointError, load_checkpoint_file

    try:
        checkpoint = load_checkpoint_file(path, f"--{stage}")
    except CheckpointError as e:
        raise SLRTImportError(str(e)) from None
    state = checkpoint.get("model_state")
    if not isinstance(state, dict):
        raise SLRTImportError(f"--{stage} {path}: no 'model_state'; expected an SLRT checkpoint (ckpts/best.ckpt)")
    missing = [p for p in STAGE_PREFIXES[stage] if not any(k.startswith(p) for k in state)]
    if missing:
        found = sorted({k.split(".")[0] for k in state})
        raise SLRTImportError(f"--{stage} {path}: no {missing[0]}* weights (it holds {', '.join(found)}); expected "
                              f"SLRT's {stage.upper()} checkpoint")
    return state


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# --- vocabularies --------------------------------------------------------------------------------------------------

SPECIALS = {"<s>": "<s>", "<si>": "<s>", "<pad>": "<pad>", "</s>": "</s>", "<unk>": "<unk>"}


class GlossSpelling:
    """SLRT's lower-case glosses spelt as the dataset spells them."""

    def __init__(self, dataset_glosses: Sequence[str]):
        self.forms: Dict[str, str] = {}
        for g in sorted(set(dataset_glosses)):
            self.forms.setdefault(g.lower(), g)
        self.upper = bool(dataset_glosses) and all(g == g.upper() for g in dataset_glosses)

    def __call__(self, gloss: str) -> str:
        if gloss != gloss.lower() or gloss.startswith("<"):
            return gloss  # a special token or a language code (de_DGS): not a gloss SLRT lower-cased
        return self.forms.get(gloss, gloss.upper() if self.upper else gloss)


def build_gloss_dictionary(recognition: Optional[List[str]], translation: Optional[List[str]], spell: GlossSpelling,
                           source_lang: str):
    """The one gloss dictionary of the imported models: fairseq's four specials (``<s>`` = SLRT's blank ``<si>``
    or ``<s>``, index 0), SLRT's recognition glosses in its order, the translator's glosses recognition lacks, and
    ``[source_lang]`` (SLRT's ``de_DGS`` in the translator's vocabulary). Returns (dictionary, index of each
    recognition id, index of each translation id)."""
    from fairseq.data import Dictionary

    d = Dictionary()
    def index_of(vocab, lang_token):
        out = []
        for symbol in vocab:
            if symbol in SPECIALS:
                out.append(d.index(SPECIALS[symbol]))
            elif lang_token and symbol == source_lang:
                out.append(d.add_symbol(f"[{source_lang}]", n=1))
            else:
                out.append(d.add_symbol(spell(symbol), n=1))
        return out
    rec = index_of(recognition, False) if recognition else None
    if rec is not None and rec[0] != d.bos():
        raise SLRTImportError(f"the recognition gloss2ids has {recognition[0]!r} at id 0, expected SLRT's blank "
                              "'<si>' or '<s>'")
    tra = index_of(translation, True) if translation else None
    if translation and f"[{source_lang}]" not in d.indices:
        raise SLRTImportError(f"the translator's gloss2ids.pkl has no {source_lang!r}; pass its sign language with "
                              "--source-lang")
    return d, rec, tra


def build_text_dictionary(spm_path: str, map_ids: Dict[int, int], rows: int, map_path: str, target_lang: str):
    """SLRT's pruned text vocabulary as a fairseq Dictionary: row i is the Hugging Face token whose mBART id maps to
    pruned id i (``map_ids.pkl``), in HF's tokenizer order (``hf_dictionary``)."""
    from fairseq.data import Dictionary

    from slt_plugins.models.hf_mbart import HFMBartError, hf_dictionary
    from fairseq_slt.tools.prune_mbart import CC25_LANGS

    try:
        full = hf_dictionary(spm_path, CC25_LANGS, rows=-1)
    except HFMBartError as e:
        raise SLRTImportError(str(e)) from None
    if len(map_ids) != rows:
        raise SLRTImportError(f"{map_path} maps {len(map_ids)} tokens but the checkpoint's mBART embedding has "
                              f"{rows} rows: the folder and the checkpoint do not belong together")
    by_new = {new: old for old, new in map_ids.items()}
    d = Dictionary()
    for new in range(rows):
        old = by_new[new]
        if old >= len(full):
            raise SLRTImportError(f"{map_path}: mBART id {old} is beyond the sentencepiece model's {len(full)} tokens")
        if new < d.nspecial:
            if full[old] != d[new]:
                raise SLRTImportError(f"{map_path}: pruned id {new} is {full[old]!r}, expected {d[new]!r}")
            continue
        if d.add_symbol(full[old], n=1) != new:
            raise SLRTImportError(f"{map_path}: token {full[old]!r} is mapped twice")
    if f"[{target_lang}]" not in d.indices:
        raise SLRTImportError(f"{map_path}: the pruned vocabulary has no {target_lang}; pass the spoken language "
                              "with --target-lang")
    return d


# --- weights -------------------------------------------------------------------------------------------------------

def head_state(slrt: dict, prefix: str, rows: List[int], size: int, source: str) -> dict:
    """SLRT's VisualHead weights under ``prefix`` → our ``head.*``, classifier rows placed at ``rows`` of a
    ``size``-row classifier."""
    head = _strip(slrt, prefix)
    out = {}
    for theirs, ours in HEAD_KEYS.items():
        for key, value in head.items():
            if key.startswith(theirs + ".") and key.count(".") == theirs.count(".") + 1:
                out[f"head.{ours}.{key[len(theirs) + 1:]}"] = value.float() if value.is_floating_point() else value
    known = {k for k in head if any(k.startswith(t + ".") and k.count(".") == t.count(".") + 1 for t in HEAD_KEYS)}
    unknown = sorted(set(head) - known - {"pe.pe"})
    if unknown:
        raise SLRTImportError(f"{source}: visual head weights {unknown[:3]} are not SingleStream-SLT's VisualHead "
                              "(a TwoStream or pyramid model?)")
    if "head.classifier.weight" not in out or "head.classifier.bias" not in out:
        raise SLRTImportError(f"{source}: no {prefix}gloss_output_layer; expected SingleStream-SLT's VisualHead")
    weight, bias = out["head.classifier.weight"], out["head.classifier.bias"]
    if weight.size(0) != len(rows):
        raise SLRTImportError(f"{source}: the gloss classifier has {weight.size(0)} rows but the recognition "
                              f"gloss2ids has {len(rows)} glosses; pass the gloss2ids the model was trained with")
    index = torch.tensor(rows)
    out["head.classifier.weight"] = weight.new_zeros(size, weight.size(1)).index_copy(0, index, weight)
    out["head.classifier.bias"] = bias.new_full((size,), NEVER).index_copy(0, index, bias)
    if "pe.pe" in head:
        check_positions(head["pe.pe"], source)
    return out


def head_options(slrt: dict, prefix: str, source: str) -> dict:
    """The visual head's widths and kernel, read from SLRT's weights; its input must be S3D block 4's 832."""
    fc1, conv = slrt.get(prefix + "fc1.weight"), slrt.get(prefix + "feedforward.pwff_layer.0.weight")
    if fc1 is None or conv is None or conv.dim() != 3:
        raise SLRTImportError(f"{source}: no {prefix}fc1 and feedforward.pwff_layer.0 convolution; expected "
                              "SingleStream-SLT's VisualHead")
    if fc1.size(1) != 832:
        raise SLRTImportError(f"{source}: the visual head reads {fc1.size(1)} features, expected S3D block 4's 832 "
                              "(SingleStream-SLT's RGB head)")
    return {"head_dim": fc1.size(0), "head_ff_dim": conv.size(0), "head_kernel_size": conv.size(2)}


def check_positions(table: torch.Tensor, source: str) -> None:
    """SLRT stores its positional table; it must be the interleaved one ``head_positions='opennmt'`` computes."""
    from slt_plugins.models.visual_head import InterleavedPositions

    table = table.reshape(-1, table.size(-1)).float()[:1024]  # the steps clips use (float32 drifts further on)
    ours = InterleavedPositions(table.size(1))(torch.ones(1, table.size(0)))[0]
    if not torch.allclose(table, ours, atol=1e-4):
        raise SLRTImportError(f"{source}: the visual head's stored positional table is not OpenNMT's interleaved "
                              "sin/cos; this importer does not know that head")


def translator_state(slrt: dict, config: dict, gloss_rows: List[int], size: int, source: str) -> dict:
    """SLRT's ``translation_network`` → ``mbart_translator`` weights: HF MBart converted by
    :mod:`slt_plugins.models.hf_mbart`, the encoder's table replaced by SLRT's gloss embedding (row of gloss
    dictionary index ``gloss_rows[j]`` = SLRT gloss id j; others SLRT's ``<unk>`` row)."""
    from slt_plugins.models.hf_mbart import HFMBartError, convert_state

    try:
        state = convert_state(_strip(slrt, "translation_network.model."), config, source)
    except HFMBartError as e:
        raise SLRTImportError(str(e)) from None
    table = slrt.get("translation_network.gloss_embedding.weight")
    if table is None or table.size(0) != len(gloss_rows):
        found = "none" if table is None else f"{table.size(0)} rows"
        raise SLRTImportError(f"{source}: gloss embedding has {found} but the translator's gloss2ids.pkl has "
                              f"{len(gloss_rows)} glosses; pass the mBart folder the model was trained with")
    unk = gloss_rows.index(3) if 3 in gloss_rows else None  # fairseq's <unk> index
    rows = table[unk].float().expand(size, -1).clone() if unk is not None else table.new_zeros(size, table.size(1))
    rows[torch.tensor(gloss_rows)] = table.float()
    state["encoder.embed_tokens.weight"] = rows
    return state


def backbone_state(slrt: dict) -> dict:
    return {f"backbone.{k}": v for k, v in _strip(slrt, "recognition_network.visual_backbone.backbone.").items()}


# --- building fairseq models and writing checkpoints --------------------------------------------------------------

def build(argv: List[str]):
    """(cfg, task, model) as fairseq-train builds them from this command line."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, argv)
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    return cfg, task, task.build_model(cfg.model)


def load_all(module: torch.nn.Module, state: dict, source: str) -> None:
    """Every weight of ``module`` from ``state`` and nothing else (positions computed by the model aside)."""
    own = module.state_dict()
    for key, value in own.items():
        if key not in state and (key.endswith("_float_tensor") or key.endswith("output_projection.weight")
                                 or key.endswith(".version")):
            state[key] = value
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise SLRTImportError(f"{source} does not fit the model: missing {missing[:4]}, unexpected {unexpected[:4]}")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise SLRTImportError(f"{source}: {key} is {tuple(value.shape)}, the model's {tuple(own[key].shape)}")
    module.load_state_dict(state, strict=True)


def checkpoint_dict(cfg, task, model, provenance: dict) -> dict:
    """What fairseq's trainer saves, for a model that has not been trained here (no optimizer state)."""
    from omegaconf import OmegaConf

    return {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "criterion": None,
        "optimizer_history": [{"criterion_name": "", "optimizer_name": "", "lr_scheduler_state": {},
                               "num_updates": 0}],
        "task_state": task.state_dict(),
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "shuffle": True, "version": 2},
                        "previous_training_time": 0.0},
        "last_optimizer_state": None,
        "slrt_import": provenance,
    }


def translator_options(config: dict, stop_at_eos: bool = True) -> dict:
    """``mbart_translator`` options that give SLRT's mBART (shape from its ``config.json``; dropout SLRT's
    fine-tuning values, 0.3 and 0.1 attention)."""
    from slt_plugins.models.hf_mbart import model_settings

    d = config.get("d_model", 1024)
    settings = model_settings(config)
    options = {
        "encoder_embed_dim": d, "decoder_embed_dim": d,
        "encoder_layers": config.get("encoder_layers", 12), "decoder_layers": config.get("decoder_layers", 12),
        "encoder_attention_heads": config.get("encoder_attention_heads", 16),
        "decoder_attention_heads": config.get("decoder_attention_heads", 16),
        "encoder_ffn_embed_dim": config.get("encoder_ffn_dim", 4096),
        "decoder_ffn_embed_dim": config.get("decoder_ffn_dim", 4096),
        "share_all_embeddings": False, "share_decoder_input_output_embed": True,
        "dropout": 0.3, "attention_dropout": 0.1, "activation_dropout": float(config.get("activation_dropout", 0.0)),
        "stop_at_eos": stop_at_eos,
        **settings,
    }
    if settings["no_scale_embedding"]:  # SLRT scales its source by sqrt(d) whatever the config says
        options["source_embed_scale"] = math.sqrt(d)
    return options


def _flag(name: str, value) -> List[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else []
    return [flag, str(value)]


# --- the dataset view ----------------------------------------------------------------------------------------------

VOCAB_FILES = ("dict.gloss.txt", "dict.text.txt", "spm.model")


def dataset_glosses(data: str) -> List[str]:
    from slt_plugins.data.manifest import manifest_path, read_manifest

    meta = os.path.join(data, "meta.json")
    if not os.path.isfile(meta):
        raise SLRTImportError(f"{meta} is missing; --data must be a dataset binarised by slt-binarise")
    with open(meta, encoding="utf-8") as f:
        splits = json.load(f).get("splits") or []
    glosses = set()
    for split in splits:
        path = manifest_path(data, split)
        if os.path.isfile(path):
            for row in read_manifest(path):
                glosses.update(row.gloss.split())
    return sorted(glosses)


def write_view(data: str, folder: str) -> None:
    """Links to every entry of the dataset but its vocabularies (written beside them by the caller). ``features/``
    is a folder of links, so that features extracted with an imported model land in the view, not beside the
    dataset's own."""
    data = os.path.abspath(data)
    os.makedirs(folder)
    for name in sorted(os.listdir(data)):
        if name == "features" and os.path.isdir(os.path.join(data, name)):
            os.makedirs(os.path.join(folder, name))
            for store in sorted(os.listdir(os.path.join(data, name))):
                os.symlink(os.path.join(data, name, store), os.path.join(folder, name, store))
        elif name not in VOCAB_FILES:
            os.symlink(os.path.join(data, name), os.path.join(folder, name))


# --- the import ----------------------------------------------------------------------------------------------------

@dataclass
class Release:
    """What was read of SLRT's files: the checkpoints' states by stage, the translator's mBART config, and the
    imported vocabularies with the place of each SLRT gloss id in the gloss dictionary."""
    states: Dict[str, dict]
    paths: Dict[str, str]
    config: Optional[dict]
    gloss_dict: object
    text_dict: object
    recognition_rows: Optional[List[int]]
    translation_rows: Optional[List[int]]


def check_inputs(s2g: str, g2t: str, s2t: str, gloss2ids: str, mbart_dir: str, data: str) -> None:
    if not (s2g or g2t or s2t):
        raise SLRTImportError("nothing to import: pass --s2g, --g2t and/or --s2t (SLRT's ckpts/best.ckpt files)")
    if (s2g or s2t) and not gloss2ids:
        raise SLRTImportError("--s2g/--s2t need --gloss2ids: the recognition vocabulary they were trained with "
                              "(SLRT's data/phoenix-2014t/gloss2ids_old.pkl, data/csl-daily/gloss2ids.pkl)")
    if s2t and not s2g:
        raise SLRTImportError("--s2t needs --s2g: SLRT's S2T reads the features its S2G's S3D made, and the "
                              "imported model reads video through that S3D")
    if (g2t or s2t) and not mbart_dir:
        raise SLRTImportError(f"--{'g2t' if g2t else 's2t'} needs --mbart-dir: SLRT's pretrained_models/mBart_de "
                              "(or mBart_zh) folder, with config.json, sentencepiece.bpe.model, gloss2ids.pkl and "
                              "map_ids.pkl")
    if not os.path.isdir(data):
        raise SLRTImportError(f"--data {data}: no such folder; binarise the dataset with slt-binarise first")


def read_release(data: str, paths: Dict[str, str], gloss2ids: str, mbart_dir: str, source_lang: str,
                 target_lang: str) -> Release:
    from slt_plugins.models.hf_mbart import HFMBartError, read_config

    states = {stage: read_slrt_checkpoint(path, stage) for stage, path in paths.items()}
    recognition = read_gloss2ids(gloss2ids) if gloss2ids else None
    translation = config = text_dict = None
    if "g2t" in states or "s2t" in states:
        for name in MBART_FILES:
            if not os.path.isfile(os.path.join(mbart_dir, name)):
                raise SLRTImportError(f"{os.path.join(mbart_dir, name)} is missing; --mbart-dir must be SLRT's "
                                      f"mBart folder ({', '.join(MBART_FILES)}, map_ids.pkl)")
        map_path = next((os.path.join(mbart_dir, n) for n in MAP_FILES if os.path.isfile(os.path.join(mbart_dir, n))),
                        os.path.join(mbart_dir, MAP_FILES[0]))
        try:
            config = read_config(mbart_dir)
        except HFMBartError as e:
            raise SLRTImportError(str(e)) from None
        translation = read_gloss2ids(os.path.join(mbart_dir, "gloss2ids.pkl"))
        key, stage = "translation_network.model.model.shared.weight", "g2t" if "g2t" in states else "s2t"
        if key not in states[stage]:
            raise SLRTImportError(f"--{stage} {paths[stage]}: no {key}; expected SLRT's {stage.upper()} checkpoint "
                                  "(a Hugging Face MBartForConditionalGeneration under translation_network.model)")
        text_dict = build_text_dictionary(os.path.join(mbart_dir, "sentencepiece.bpe.model"), read_map_ids(map_path),
                                          states[stage][key].size(0), map_path, target_lang)
    gloss_dict, rec_rows, tra_rows = build_gloss_dictionary(recognition, translation,
                                                            GlossSpelling(dataset_glosses(data)), source_lang)
    return Release(states, paths, config, gloss_dict, text_dict, rec_rows, tra_rows)


#: SLRT's visual settings that differ from this toolkit's defaults (S3D's first block frozen, as SLRT trains it)
SLRT_VISUAL = {"head_positions": "opennmt", "backbone_args": repr({"bgr_input": True}), "backbone_frozen_blocks": 1}


def sign2gloss_model(r: Release, sign_input: List[str]):
    """(fairseq-train options, state) of the imported Sign2Gloss model."""
    source = f"--s2g {r.paths['s2g']}"
    visual = dict(SLRT_VISUAL, **head_options(r.states["s2g"], HEAD, source))
    options = ["--task", "sign2gloss", "--arch", "s3d_encoder", *sign_input,
               *sum((_flag(k, v) for k, v in visual.items()), [])]
    weights = {**backbone_state(r.states["s2g"]),
               **head_state(r.states["s2g"], HEAD, r.recognition_rows, len(r.gloss_dict), source)}
    return options, {f"encoder.{k}": v for k, v in weights.items()}, source


def gloss2text_model(r: Release, languages: List[str]):
    source = f"--g2t {r.paths['g2t']}"
    options = ["--task", "gloss2text", *languages, "--arch", "mbart_translator",
               *sum((_flag(k, v) for k, v in translator_options(r.config).items()), [])]
    return options, translator_state(r.states["g2t"], r.config, r.translation_rows, len(r.gloss_dict), source), source


def sign2text_model(r: Release, sign_input: List[str], languages: List[str]):
    """The joint model: S2T's head, mapper and translator, and the S3D of S2G (which made S2T's features)."""
    source, slrt = f"--s2t {r.paths['s2t']}", r.states["s2t"]
    mapper, mapper_state = vl_mapper(slrt, r.recognition_rows, len(r.gloss_dict), source)
    visual = dict(SLRT_VISUAL, **head_options(slrt, HEAD, source))
    options = ["--task", "sign2text", *languages, "--arch", "joint", *sign_input, "--gloss-beam", "5",
               "--visual-args", repr(visual), "--translator-arch", "mbart_translator",
               "--translator-args", repr(translator_options(r.config)), "--vl-mapper", mapper["name"],
               "--vl-mapper-args", repr(mapper["args"])]
    sign = {**backbone_state(r.states["s2g"]),
            **head_state(slrt, HEAD, r.recognition_rows, len(r.gloss_dict), source)}
    translator = translator_state(slrt, r.config, r.translation_rows, len(r.gloss_dict), source)
    state = {f"encoder.sign.{k}": v for k, v in sign.items()}
    state.update({f"encoder.mapper.{k}": v for k, v in mapper_state.items()})
    state.update({f"encoder.text.{k[len('encoder.'):]}": v for k, v in translator.items() if k.startswith("encoder.")})
    state.update({k: v for k, v in translator.items() if k.startswith("decoder.")})
    return options, state, source


def import_slrt(out: str, data: str, *, s2g: str = "", g2t: str = "", s2t: str = "", gloss2ids: str = "",
                mbart_dir: str = "", source_lang: str = "de_DGS", target_lang: str = "de_DE", crop_size: int = 224,
                overwrite: bool = False) -> dict:
    """Read SLRT's files, write ``out`` (atomically); returns what ``import.json`` records."""
    import shutil

    import slt_plugins
    from fairseq_slt.tools.atomic import Owner, staging

    check_inputs(s2g, g2t, s2t, gloss2ids, mbart_dir, data)
    paths = {stage: path for stage, path in (("s2g", s2g), ("g2t", g2t), ("s2t", s2t)) if path}
    release = read_release(data, paths, gloss2ids, mbart_dir, source_lang, target_lang)
    out = os.path.abspath(out)
    user_dir = os.path.dirname(os.path.abspath(slt_plugins.__file__))
    languages = ["--source-lang", source_lang, "--target-lang", target_lang]
    sign_input = ["--input", "frames", "--crop-size", str(crop_size)]
    inputs = dict(paths, gloss2ids=gloss2ids, mbart_dir=mbart_dir)
    info = {"tool": f"fairseq-slt {slt_plugins.__version__} slt-import-slrt", "data": os.path.abspath(data),
            "inputs": {k: os.path.abspath(v) for k, v in inputs.items() if v}, "checkpoints": {},
            "train_options": {}, "fine_tune": {}, "gloss_dictionary": len(release.gloss_dict),
            "text_dictionary": len(release.text_dict) if release.text_dict is not None else None}
    models = {"s2g": lambda: sign2gloss_model(release, sign_input),
              "g2t": lambda: gloss2text_model(release, languages),
              "s2t": lambda: sign2text_model(release, sign_input, languages)}
    owner = Owner("slt-import-slrt", "import.json", "tool")
    with staging(out, owner, inputs=[data, *inputs.values()], overwrite=overwrite) as tmp:
        view = os.path.join(tmp, "data")
        write_view(data, view)
        release.gloss_dict.save(os.path.join(view, "dict.gloss.txt"))
        if release.text_dict is not None:
            release.text_dict.save(os.path.join(view, "dict.text.txt"))
            shutil.copyfile(os.path.join(mbart_dir, "sentencepiece.bpe.model"), os.path.join(view, "spm.model"))
        for stage in paths:
            options, state, source = models[stage]()
            cfg, task, model = build([view, "--user-dir", user_dir, *options])  # on the staged view
            load_all(model, state, source)
            checkpoint = checkpoint_dict(cfg, task, model, dict(info["inputs"], source=paths[stage]))
            checkpoint["cfg"]["task"]["data"] = os.path.join(out, "data")  # where the view will be
            torch.save(checkpoint, os.path.join(tmp, f"{stage}.pt"))
            info["checkpoints"][stage] = os.path.join(out, f"{stage}.pt")
            info["train_options"][stage] = options  # fairseq-train's, but the data and --user-dir
            info["fine_tune"][stage] = shlex.join(["fairseq-train", os.path.join(out, "data"), "--user-dir",
                                                   "slt_plugins", *options, "--restore-file",
                                                   info["checkpoints"][stage]])
        with open(os.path.join(tmp, "import.json"), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1, ensure_ascii=False)
    return info


def vl_mapper(slrt: dict, rec_rows: List[int], size: int, source: str) -> Tuple[dict, dict]:
    """SLRT's VLMapper → ours: ``projection`` (Linear, ReLU, Linear on the gloss features) is ``mlp``;
    ``embedding`` (a bias-free Linear on the gloss probabilities) is ``gloss_embedding``, its rows placed at the
    recognition glosses' indices."""
    mapping = _strip(slrt, "vl_mapper.mapping.")
    if set(mapping) == {"0.weight", "0.bias", "2.weight", "2.bias"}:
        hidden, out = mapping["0.weight"].size(0), mapping["2.weight"].size(0)
        return ({"name": "mlp", "args": {"hidden_dim": hidden, "dropout": 0.0}},
                {"layers.0.weight": mapping["0.weight"], "layers.0.bias": mapping["0.bias"],
                 "layers.3.weight": mapping["2.weight"], "layers.3.bias": mapping["2.bias"]})
    if set(mapping) == {"weight"}:
        weight = mapping["weight"].t()  # glosses × d
        if weight.size(0) != len(rec_rows):
            raise SLRTImportError(f"--s2t {source}: the embedding mapper reads {weight.size(0)} gloss probabilities "
                                  f"but the recognition gloss2ids has {len(rec_rows)}")
        rows = weight.new_zeros(size, weight.size(1)).index_copy(0, torch.tensor(rec_rows), weight.float())
        return {"name": "gloss_embedding", "args": {"temperature": 1.0}}, {"weight": rows}
    raise SLRTImportError(f"--s2t {source}: vl_mapper.mapping holds {sorted(mapping)[:4]}; expected SLRT's "
                          "'projection' (0.*, 2.*) or 'embedding' (weight) mapper")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="slt-import-slrt", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--data", required=True, help="the dataset binarised by slt-binarise (data_bins/NAME)")
    p.add_argument("--out", required=True, help="output folder (replaced whole when done; one this tool did not "
                   "write is refused unless --overwrite)")
    p.add_argument("--s2g", default="", help="SLRT's Sign2Gloss checkpoint (…_s2g/ckpts/best.ckpt)")
    p.add_argument("--g2t", default="", help="SLRT's Gloss2Text checkpoint (…_g2t/ckpts/best.ckpt)")
    p.add_argument("--s2t", default="", help="SLRT's Sign2Text checkpoint (…_s2t/ckpts/best.ckpt); needs --s2g")
    p.add_argument("--gloss2ids", default="", help="the recognition vocabulary of --s2g/--s2t "
                   "(SLRT's data/phoenix-2014t/gloss2ids_old.pkl, data/csl-daily/gloss2ids.pkl)")
    p.add_argument("--mbart-dir", default="", help="SLRT's pretrained_models/mBart_de (or mBart_zh) folder")
    p.add_argument("--source-lang", default="de_DGS", help="SLRT's src_lang (de_DGS; CSL-Daily: zh_CSL)")
    p.add_argument("--target-lang", default="de_DE", help="SLRT's tgt_lang (de_DE; CSL-Daily: zh_CN)")
    p.add_argument("--crop-size", type=int, default=224, help="the square the frames are cropped to (SLRT: 224)")
    p.add_argument("--bundle", default="", metavar="DIR", help="also export the most complete imported model as a "
                   "bundle for slt-translate")
    p.add_argument("--overwrite", action="store_true", help="replace --out even if this tool did not write it")
    args = p.parse_args(argv)
    from fairseq_slt.tools.atomic import OutputError

    try:
        info = import_slrt(args.out, args.data, s2g=args.s2g, g2t=args.g2t, s2t=args.s2t, gloss2ids=args.gloss2ids,
                           mbart_dir=args.mbart_dir, source_lang=args.source_lang, target_lang=args.target_lang,
                           crop_size=args.crop_size, overwrite=args.overwrite)
        if args.bundle:
            from fairseq_slt.tools.export import ExportError, export

            name = next(n for n in ("s2t", "g2t", "s2g") if n in info["checkpoints"])
            try:
                export(info["checkpoints"][name], args.bundle, os.path.join(os.path.abspath(args.out), "data"),
                       overwrite=args.overwrite)
            except ExportError as e:
                raise SLRTImportError(f"--bundle {args.bundle}: {e}") from None
    except (SLRTImportError, OutputError) as e:
        print(f"slt-import-slrt: error: {e}", file=sys.stderr)
        return 2
    for name, path in info["checkpoints"].items():
        print(f"{name}: {path}")
    if args.bundle:
        print(f"bundle: {args.bundle}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
