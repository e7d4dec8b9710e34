"""slt-prune-mbart: cut fairseq's mbart.cc25 release down to the vocabulary of one binarised dataset.

mbart.cc25 carries 250,027 embedding rows (``dict.txt``, then 25 ``[xx_XX]`` language tokens and ``<mask>``, the
order fairseq's ``translation_from_pretrained_bart`` task adds them in). A sign language corpus uses a few thousand:
keeping only those makes the model ~1 GiB smaller and its softmax two orders of magnitude cheaper (DESIGN.md §3).

Kept, in this order: the four special symbols; every sub-word of mBART's ``sentence.bpe.model`` that occurs in the
dataset's texts or (lower-cased) glosses, in their old order; the checkpoint's language tokens; the source language
token (``[de_DGS]``, new: it starts as a copy of the target language's row); ``<mask>``; then one token per gloss,
whose embedding starts as the mean of the rows of the gloss's sub-words. Every tensor whose first dimension is the
vocabulary (embeddings, output projection) is cut the same way.

Writes to ``--out`` (atomically): ``model.pt`` (the checkpoint, rows pruned), ``dict.txt`` (the pruned dictionary,
language tokens and glosses included: ``Dictionary.load`` gives the model's vocabulary as is),
``sentence.bpe.model`` (copied), ``id_map.tsv`` (new id, old id or ``-`` for new rows, token, and the old ids a new
row was initialised from) and ``meta.json``. Train with ``--task gloss2text --vocab OUT
--pretrained-mbart OUT/model.pt``.

``--mbart-dir`` may also be a Hugging Face MBart folder (``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, ``sentencepiece.bpe.model``, as ``facebook/mbart-large-cc25``): it is converted to the
same fairseq layout by :mod:`slt_plugins.models.hf_mbart` (no ``transformers`` needed), its vocabulary read in HF's
tokenizer order, and the settings its ``config.json`` fixes (activation, embedding scale) are stored in ``model.pt``
as ``mbart_settings``.
"""

import argparse
import json
import os
import shutil
import sys
import time
from typing import Dict, List, Optional, Sequence

import sentencepiece as spm
import torch

from fairseq.data import Dictionary
from slt_plugins import __version__  # importing slt_plugins allow-lists the checkpoint's Namespace for torch.load
from slt_plugins.data.manifest import manifest_path, read_manifest
from slt_plugins.models import hf_mbart
from slt_plugins.models.hf_mbart import is_hf_mbart_folder
from slt_plugins.safe_checkpoint import CheckpointError, load_checkpoint_file
from fairseq_slt.tools.atomic import OutputError, Owner, check_output, staging

OWNER = Owner("slt-prune-mbart", "meta.json", "tool")

#: mbart.cc25's languages, in the order their tokens follow dict.txt in the checkpoint
CC25_LANGS = ("ar_AR,cs_CZ,de_DE,en_XX,es_XX,et_EE,fi_FI,fr_XX,gu_IN,hi_IN,it_IT,ja_XX,kk_KZ,ko_KR,lt_LT,lv_LV,"
              "my_MM,ne_NP,nl_XX,ro_RO,ru_RU,si_LK,tr_TR,vi_VN,zh_CN").split(",")
EMBEDDING = "encoder.embed_tokens.weight"


class PruneError(ValueError):
    """Stops the run with one line naming the file and the fix."""


def lang_token(lang: str) -> str:
    return f"[{lang}]"


def load_mbart_dictionary(path: str, langs: Sequence[str], rows: int) -> Dictionary:
    """``dict.txt`` plus the language tokens and ``<mask>``, as fairseq's mBART fine-tuning task builds it (a
    checkpoint saved without the ``<mask>`` row, one fewer than that, gets no ``<mask>``)."""
    d = Dictionary.load(path)
    for lang in langs:
        d.add_symbol(lang_token(lang))
    if rows != len(d):
        d.add_symbol("<mask>")
    return d


def dataset_sentences(data: str) -> Dict[str, List[str]]:
    """Texts and glosses of every split slt-binarise wrote (the ``splits`` of its meta.json)."""
    meta = os.path.join(data, "meta.json")
    if not os.path.isfile(meta):
        raise PruneError(f"{meta} is missing; binarise the dataset with slt-binarise first")
    with open(meta, encoding="utf-8") as f:
        splits = sorted(json.load(f)["splits"])
    texts, glosses = [], set()
    for split in splits:
        for row in read_manifest(manifest_path(data, split)):
            texts.append(row.text)
            glosses.update(row.gloss.split())
    return {"splits": splits, "texts": texts, "glosses": sorted(glosses)}


def vocabulary_plan(old: Dictionary, sp: spm.SentencePieceProcessor, corpus: dict, langs: Sequence[str],
                    source_lang: str, target_lang: str, lowercase_glosses: bool):
    """(token, old id or None, old rows to average) for every row of the pruned vocabulary, in order, and the
    number of rows of each kind."""
    def sub_words(sentence: str) -> List[int]:
        return [old.index(p) for p in sp.encode(sentence, out_type=str)]

    gloss_parts = {g: sub_words(g.lower() if lowercase_glosses else g) for g in corpus["glosses"]}
    specials = [old.bos(), old.pad(), old.eos(), old.unk()]
    used = {i for text in corpus["texts"] for i in sub_words(text)}
    used.update(i for parts in gloss_parts.values() for i in parts)
    pieces = sorted(used - set(specials))
    languages = [old.index(lang_token(lang)) for lang in langs]
    plan = [(old[i], i, [i]) for i in specials + pieces + languages]
    if lang_token(source_lang) not in old.indices:
        plan.append((lang_token(source_lang), None, [old.index(lang_token(target_lang))]))
    if "<mask>" in old.indices:
        plan.append(("<mask>", old.index("<mask>"), [old.index("<mask>")]))
    taken, glosses = {token for token, _, _ in plan}, 0
    for gloss, parts in gloss_parts.items():
        if gloss not in taken:  # a gloss spelt like a kept sub-word shares its row
            plan.append((gloss, None, [p for p in parts if p != old.unk()] or [old.unk()]))
            glosses += 1
    return plan, {"sub_words": len(pieces), "languages": len(languages), "glosses": glosses}


def prune_rows(state: Dict[str, torch.Tensor], rows: int, plan) -> List[str]:
    """Cut every vocabulary-sized tensor of ``state`` (in place) to the plan's rows; returns their names."""
    keep = torch.tensor([ids[0] for _, _, ids in plan])
    pruned = []
    for key, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.dim() >= 1 and tensor.size(0) == rows:
            new = tensor.index_select(0, keep)
            for i, (_, old_id, ids) in enumerate(plan):
                if old_id is None:  # a new token: the mean of the rows it was made from
                    new[i] = tensor[ids].float().mean(0).to(tensor.dtype)
            state[key] = new
            pruned.append(key)
    return pruned


def release_files(mbart_dir: str):
    """(``"fairseq"`` or ``"hf"``, the paths of its files) for fairseq's release or a Hugging Face MBart folder (told
    apart by ``config.json``), every file present, or a one-line error naming the missing one."""
    if is_hf_mbart_folder(mbart_dir):
        paths = {"weights": mbart_dir, "sentence.bpe.model": os.path.join(mbart_dir, hf_mbart.SPM)}
        if not os.path.isfile(paths["sentence.bpe.model"]):
            raise PruneError(f"{paths['sentence.bpe.model']} is missing: a Hugging Face MBart folder needs "
                             "config.json, model.safetensors or pytorch_model.bin, and sentencepiece.bpe.model")
        return "hf", paths
    paths = {name: os.path.join(mbart_dir, name) for name in ("model.pt", "dict.txt", "sentence.bpe.model")}
    for path in paths.values():
        if not os.path.isfile(path):
            raise PruneError(f"{path} is missing: --mbart-dir must hold fairseq's mbart.cc25 release "
                             "(model.pt, dict.txt, sentence.bpe.model) or a Hugging Face MBart folder "
                             "(config.json, model.safetensors or pytorch_model.bin, sentencepiece.bpe.model)")
    return "fairseq", paths


def load_release(release: str, paths: Dict[str, str], langs: Sequence[str]):
    """(checkpoint with the fairseq state dict under ``model``, the dictionary of its rows). An HF folder is
    converted by :mod:`slt_plugins.models.hf_mbart`; the settings its config fixes are kept as ``mbart_settings``,
    which ``--pretrained-mbart`` checks against the model's."""
    if release == "hf":
        try:
            state, settings = hf_mbart.load_hf_mbart(paths["weights"])
            old = hf_mbart.hf_dictionary(paths["sentence.bpe.model"], langs, state[EMBEDDING].size(0))
        except hf_mbart.HFMBartError as e:
            raise PruneError(str(e)) from None
        checkpoint, source = {"model": state, "mbart_settings": settings}, paths["weights"]
    else:
        try:  # weights_only=True: a truncated download, or a pickle that would run code, is refused
            checkpoint = load_checkpoint_file(paths["model.pt"])
        except CheckpointError as e:
            raise PruneError(f"{e}; download mbart.cc25 again") from None
        state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
        if not state or EMBEDDING not in state:
            raise PruneError(f"{paths['model.pt']}: not a fairseq BART/mBART checkpoint (no model.{EMBEDDING})")
        old = load_mbart_dictionary(paths["dict.txt"], langs, state[EMBEDDING].size(0))
        source = paths["model.pt"]
    rows = state[EMBEDDING].size(0)
    if rows != len(old):
        raise PruneError(f"{source} has {rows} embedding rows but its vocabulary with {len(langs)} language tokens "
                         f"and <mask> gives {len(old)}; pass the checkpoint's languages with --langs")
    return checkpoint, old


def prune(mbart_dir: str, data: str, out: str, *, source_lang: str, target_lang: str,
          langs: Sequence[str] = CC25_LANGS, lowercase_glosses: bool = True, overwrite: bool = False) -> dict:
    started = time.time()
    release, paths = release_files(mbart_dir)
    check_output(out, OWNER, [mbart_dir], overwrite)  # before the slow loading; OUT may lie inside --data
    checkpoint, old = load_release(release, paths, langs)
    state = checkpoint["model"]
    rows = state[EMBEDDING].size(0)
    if lang_token(target_lang) not in old.indices:
        raise PruneError(f"target language {target_lang!r} is not among the checkpoint's languages "
                         f"({', '.join(langs)}); pick one with --target-lang")

    corpus = dataset_sentences(data)
    sp = spm.SentencePieceProcessor(model_file=paths["sentence.bpe.model"])
    plan, counts = vocabulary_plan(old, sp, corpus, langs, source_lang, target_lang, lowercase_glosses)
    pruned_keys = prune_rows(state, rows, plan)
    checkpoint.pop("last_optimizer_state", None)  # Adam moments of 250k rows: useless after pruning, and huge

    new = Dictionary()  # starts with the same four specials, in the same order
    for token, _, _ in plan[4:]:
        new.add_symbol(token, n=1)
    assert len(new) == len(plan), "a kept token is listed twice"
    meta = {
        "source": {"mbart_dir": mbart_dir, "format": release, "data": data, "splits": corpus["splits"]},
        "rows": {"before": rows, "after": len(plan), **counts},
        "source_lang": source_lang, "target_lang": target_lang, "lowercase_glosses": lowercase_glosses,
        "pruned_tensors": pruned_keys,
        "tool": f"fairseq-slt {__version__} slt-prune-mbart",
    }
    with staging(out, OWNER, inputs=[mbart_dir], overwrite=overwrite) as tmp:
        torch.save(checkpoint, os.path.join(tmp, "model.pt"))
        new.save(os.path.join(tmp, "dict.txt"))
        shutil.copyfile(paths["sentence.bpe.model"], os.path.join(tmp, "sentence.bpe.model"))
        with open(os.path.join(tmp, "id_map.tsv"), "w", encoding="utf-8") as f:
            f.write("new_id\told_id\ttoken\tinitialised_from\n")
            for new_id, (token, old_id, ids) in enumerate(plan):
                f.write(f"{new_id}\t{'-' if old_id is None else old_id}\t{token}\t{','.join(map(str, ids))}\n")
        meta["seconds"] = round(time.time() - started, 1)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2, ensure_ascii=False)
    return meta


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slt-prune-mbart", description=__doc__.split("\n\n")[0])
    p.add_argument("--mbart-dir", required=True, help="fairseq's mbart.cc25 folder (model.pt, dict.txt, "
                   "sentence.bpe.model) or a Hugging Face MBart folder (config.json, model.safetensors or "
                   "pytorch_model.bin, sentencepiece.bpe.model), told apart by config.json")
    p.add_argument("--data", required=True, help="binarised dataset (data_bins/NAME) whose vocabulary to keep")
    p.add_argument("--out", required=True, help="output folder, e.g. data_bins/NAME/mbart; an existing folder that "
                   "slt-prune-mbart did not write is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace --out even if slt-prune-mbart did not write it")
    p.add_argument("--source-lang", default="de_DGS", help="sign language tag, added as [TAG] (default de_DGS)")
    p.add_argument("--target-lang", default="de_DE", help="spoken language, one of the checkpoint's (default de_DE)")
    p.add_argument("--langs", default=",".join(CC25_LANGS),
                   help="the checkpoint's languages, comma-separated, in order (default: mbart.cc25's 25)")
    p.add_argument("--keep-gloss-case", action="store_true",
                   help="split glosses into sub-words as written (default: lower-cased, like the text)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        meta = prune(args.mbart_dir, args.data, args.out, source_lang=args.source_lang, target_lang=args.target_lang,
                     langs=[x for x in args.langs.split(",") if x], lowercase_glosses=not args.keep_gloss_case,
                     overwrite=args.overwrite)
    except (PruneError, OutputError) as e:
        print(f"slt-prune-mbart: error: {e}", file=sys.stderr)
        return 2
    r = meta["rows"]
    print(f"{args.out}: {r['before']} → {r['after']} rows ({r['sub_words']} sub-words, {r['languages']} languages, "
          f"{r['glosses']} glosses); pruned {', '.join(meta['pruned_tensors'])}; {meta['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
