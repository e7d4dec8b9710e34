"""Read a Hugging Face MBart folder (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``,
``sentencepiece.bpe.model``) as an ``mbart_translator`` state dict, without ``transformers``.

HF's ``MBartForConditionalGeneration`` is fairseq's pre-norm mBART under other names; the mapping:

- ``model.shared`` (= both ``embed_tokens`` and, tied, ``lm_head``) → ``encoder/decoder.embed_tokens`` and
  ``decoder.output_projection``; an untied ``lm_head`` that differs is refused (``mbart_translator`` shares them).
- ``model.{encoder,decoder}.embed_positions`` → the same rows: HF adds its offset 2 to positions counted from 0,
  fairseq counts positions from ``padding_idx + 1 = 2``; both tables have ``max_position_embeddings + 2`` rows.
  fairseq skips padding when counting, HF does not: the two agree on unpadded and right-padded sentences (the
  gloss2text task pads on the right).
- ``layernorm_embedding``, the final ``layer_norm`` of encoder and decoder, and every layer's weights keep their names
  once ``model.`` is stripped.
- ``final_logits_bias`` (HF adds it to the logits; zero in every released mBART) has no fairseq counterpart: a
  non-zero one is refused.
- ``config.scale_embedding`` → ``--no-scale-embedding`` (both scale by sqrt(d_model)), ``activation_function`` →
  ``--activation-fn``: :func:`model_settings` returns them, and ``MBartTranslator`` refuses weights whose settings its
  command line contradicts.
- The vocabulary is HF's tokenizer's: ``<s> <pad> </s> <unk>``, the sentencepiece pieces from id 3 on (HF id =
  piece id + 1), the language codes, then ``<mask>`` — what :func:`hf_dictionary` builds as a fairseq Dictionary.

Untrusted files run no code: safetensors holds raw tensors, ``pytorch_model.bin`` is read with
``torch.load(weights_only=True)``.
"""

import json
import os
from typing import Dict, Sequence, Tuple

import torch

CONFIG, SAFETENSORS, SAFETENSORS_INDEX, BIN, SPM = (
    "config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
    "sentencepiece.bpe.model")

#: HF ``activation_function`` → fairseq ``--activation-fn`` computing the same function
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_accurate", "gelu_pytorch_tanh": "gelu_accurate",
               "gelu_fast": "gelu_accurate", "tanh": "tanh", "linear": "linear", "silu": "swish", "swish": "swish"}


class HFMBartError(ValueError):
    """One line naming the file and what was expected."""


def is_hf_mbart_folder(path: str) -> bool:
    """A folder with HF's ``config.json`` (fairseq's release has ``model.pt`` and ``dict.txt`` instead)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG))


def read_config(folder: str) -> dict:
    path = os.path.join(folder, CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise HFMBartError(f"{path} cannot be read as JSON ({type(e).__name__}); download the model folder again")
    if not isinstance(config, dict) or config.get("model_type") != "mbart":
        found = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise HFMBartError(f"{path}: model_type {found!r}, expected 'mbart' (a Hugging Face MBart folder)")
    special = {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
    for key, value in special.items():
        if config.get(key, value) != value:
            raise HFMBartError(f"{path}: {key} {config[key]}, expected {value} (mBART's <s> <pad> </s> <unk> order)")
    if config.get("activation_function", "gelu") not in ACTIVATIONS:
        raise HFMBartError(f"{path}: activation_function {config['activation_function']!r} has no fairseq "
                           f"counterpart (supported: {', '.join(ACTIVATIONS)})")
    return config


def model_settings(config: dict) -> Dict[str, object]:
    """The ``mbart_translator`` arguments that the weights fix and their shapes do not show."""
    return {
        "activation_fn": ACTIVATIONS[config.get("activation_function", "gelu")],
        "no_scale_embedding": not config.get("scale_embedding", False),
        "encoder_normalize_before": True,  # HF's MBart is pre-norm, with both embedding and final layer norms
        "decoder_normalize_before": True,
        "layernorm_embedding": True,
        "max_source_positions": config.get("max_position_embeddings", 1024),
        "max_target_positions": config.get("max_position_embeddings", 1024),
    }


def read_weights(folder: str) -> Dict[str, torch.Tensor]:
    """HF's state dict from ``model.safetensors`` (or its sharded index) or ``pytorch_model.bin``."""
    paths = {name: os.path.join(folder, name) for name in (SAFETENSORS, SAFETENSORS_INDEX, BIN)}
    if os.path.isfile(paths[SAFETENSORS]) or os.path.isfile(paths[SAFETENSORS_INDEX]):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise HFMBartError(f"{folder} holds safetensors weights: install the safetensors package "
                               "(pip install -e '.[hf]')") from None
        if os.path.isfile(paths[SAFETENSORS]):
            files = [paths[SAFETENSORS]]
        else:
            with open(paths[SAFETENSORS_INDEX], encoding="utf-8") as f:
                files = [os.path.join(folder, name) for name in sorted(set(json.load(f)["weight_map"].values()))]
        state = {}
        for path in files:
            try:
                state.update(load_file(path, device="cpu"))
            except Exception as e:  # truncated or not a safetensors file
                raise HFMBartError(f"{path} cannot be read as safetensors ({type(e).__name__}: "
                                   f"{str(e).splitlines()[0] if str(e) else ''}); download it again") from None
        return state
    if os.path.isfile(paths[BIN]):
        try:
            state = torch.load(paths[BIN], map_location="cpu", weights_only=True)
        except Exception as e:  # truncated, or a pickle holding more than tensors
            raise HFMBartError(f"{paths[BIN]} cannot be read as plain weights ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); download it again") from None
        if not isinstance(state, dict):
            raise HFMBartError(f"{paths[BIN]} holds a {type(state).__name__}, expected a state dict")
        return state
    raise HFMBartError(f"{folder} has {CONFIG} but neither {SAFETENSORS} nor {BIN}: not a complete Hugging Face "
                       "MBart folder")


def convert_state(hf: Dict[str, torch.Tensor], config: dict, source: str) -> Dict[str, torch.Tensor]:
    """HF ``MBartForConditionalGeneration`` weights → ``mbart_translator`` weights (see the module docstring)."""
    hf = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in hf.items()}
    shared = hf.get("shared.weight", hf.get("encoder.embed_tokens.weight"))
    if shared is None:
        raise HFMBartError(f"{source}: no model.shared.weight; not MBartForConditionalGeneration weights")
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        if key in hf and not torch.equal(hf[key], shared):
            raise HFMBartError(f"{source}: {key} differs from model.shared.weight; mbart_translator shares one "
                               "embedding table for encoder, decoder and output")
    bias = hf.pop("final_logits_bias", None)
    if bias is not None and bool(bias.any()):
        raise HFMBartError(f"{source}: final_logits_bias is not zero (max |b| {bias.abs().max().item():.3g}); "
                           "mbart_translator's output projection has no bias")
    state = {}
    for key, value in hf.items():
        if key in ("shared.weight", "lm_head.weight") or key.endswith("embed_tokens.weight"):
            continue
        if not key.startswith(("encoder.", "decoder.")):
            raise HFMBartError(f"{source}: unexpected weight {key}; expected MBartForConditionalGeneration's")
        state[key] = value.float() if value.is_floating_point() else value
    shared = shared.float()
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight"):
        state[key] = shared
    for side in ("encoder", "decoder"):
        state[f"{side}.version"] = torch.Tensor([3])  # fairseq's layer-norm naming, as written since v0.9
        rows = state[f"{side}.embed_positions.weight"].size(0)
        expected = config.get("max_position_embeddings", 1024) + 2
        if rows != expected:
            raise HFMBartError(f"{source}: {side}.embed_positions has {rows} rows, expected "
                               f"max_position_embeddings + 2 = {expected} (HF's offset of 2)")
    if shared.size(0) != config.get("vocab_size", shared.size(0)):
        raise HFMBartError(f"{source}: {shared.size(0)} embedding rows but config.json says vocab_size "
                           f"{config['vocab_size']}")
    return state


def load_hf_mbart(folder: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """(``mbart_translator`` state dict, the settings it needs) from an HF MBart folder."""
    config = read_config(folder)
    return convert_state(read_weights(folder), config, folder), model_settings(config)


def hf_dictionary(spm_path: str, langs: Sequence[str], rows: int):
    """HF MBartTokenizer's ids as a fairseq Dictionary: four specials, sentencepiece pieces 3… (HF adds 1 to a piece's
    id; its pieces 0-2 are <unk> <s> </s>), ``[lang]`` per language, then ``<mask>`` if ``rows`` has room for it."""
    import sentencepiece as spm
    from fairseq.data import Dictionary

    sp = spm.SentencePieceProcessor(model_file=spm_path)
    if not (sp.is_unknown(0) and sp.id_to_piece(1) == "<s>" and sp.id_to_piece(2) == "</s>"):
        raise HFMBartError(f"{spm_path}: pieces 0-2 are {[sp.id_to_piece(i) for i in range(3)]}, expected "
                           "<unk> <s> </s> (mBART's sentencepiece model)")
    d = Dictionary()
    for i in range(3, sp.get_piece_size()):
        d.add_symbol(sp.id_to_piece(i), n=1)
    if len(d) != sp.get_piece_size() + 1:
        raise HFMBartError(f"{spm_path}: a piece repeats a special symbol; it is not mBART's sentencepiece model")
    for lang in langs:
        d.add_symbol(f"[{lang}]")
    if rows != len(d):
        d.add_symbol("<mask>")
    return d
