#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): ordinary inputs taken
from the test fixtures, and the reproducers of issue 17, shrunk where the original was large (the
limits they hit do not depend on the size past the limit). Run from anywhere; rewrites the folders."""
import json
import pathlib
import re
import shutil

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "data"
CORPUS = HERE / "corpus"


def put(target, name, text):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "", name)
    (d / name).write_bytes(text.encode() if isinstance(text, str) else text)


def nested(depth, inner=""):
    return "[" * depth + inner + "]" * depth


def sequence(depth, key, leaf):
    return '{"type":"Sequence","%s":[' % key * depth + leaf + "]}" * depth


def main():
    for t in ("safetensors", "model_config", "tokenizer_json", "preference_row"):
        shutil.rmtree(CORPUS / t, ignore_errors=True)

    # safetensors: the input is the header JSON.
    put("safetensors", "valid_two_tensors",
        '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},'
        '"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}')
    put("safetensors", "empty_tensor", '{"e":{"dtype":"I64","shape":[0,5],"data_offsets":[0,0]}}')
    put("safetensors", "overlap",
        '{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}}')
    put("safetensors", "huge_shape", '{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}')
    put("safetensors", "duplicate_key",
        '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}')
    # issue 17 item 1: "shape" nested ~66k levels in a 130 KB file (SIGSEGV).
    put("safetensors", "issue17_nested_shape_66k",
        '{"w":{"dtype":"F32","shape":' + nested(66000) + ',"data_offsets":[0,0]}}')

    # config.json
    for fixture in ("llama-gqa", "gpt2", "mistral-window", "qwen3", "phi3", "gemma2", "olmo2"):
        p = DATA / fixture / "ref" / "config.json"
        if p.exists():
            put("model_config", fixture, p.read_bytes())
    base = json.loads((DATA / "llama-gqa" / "ref" / "config.json").read_text())
    # issue 17 item 1: {"model_type": [[[...100k...]]]}
    put("model_config", "issue17_nested_model_type_100k", '{"model_type": ' + nested(100000) + "}")
    # item 3 / 9: implausible values
    for key, value in (("num_hidden_layers", 1000000), ("head_dim", 2 ** 62), ("max_position_embeddings", 10 ** 12),
                       ("eos_token_id", 10 ** 12), ("bos_token_id", -7), ("vocab_size", 2 ** 40),
                       ("eos_token_id", 2 ** 64 - 1), ("hidden_size", [[[1]]])):
        c = dict(base)
        c[key] = value
        put("model_config", "issue17_%s_%s" % (key, str(value)[:12].replace(" ", "")), json.dumps(c))

    # tokenizer.json
    tok = json.loads((DATA / "gpt2" / "ref" / "tokenizer.json").read_text())
    put("tokenizer_json", "gpt2", json.dumps(tok))
    byte_level = '{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}'

    def with_raw(field, raw):
        t = dict(tok)
        t[field] = "@@RAW@@"
        return json.dumps(t).replace('"@@RAW@@"', raw)

    # issue 17 item 2: Sequence recursion (the JSON limit and the Sequence limit)
    put("tokenizer_json", "issue17_sequence_depth_1000", with_raw("pre_tokenizer", sequence(1000, "pretokenizers", byte_level)))
    put("tokenizer_json", "issue17_sequence_depth_20", with_raw("pre_tokenizer", sequence(20, "pretokenizers", byte_level)))
    put("tokenizer_json", "issue17_normalizer_depth_20", with_raw("normalizer", sequence(20, "normalizers", '{"type":"NFC"}')))
    put("tokenizer_json", "sequence_depth_2", with_raw("pre_tokenizer", sequence(2, "pretokenizers", byte_level)))
    # items 3 and 4: vocabulary ids 1e8, 2^32+5, 2^31, added token 2^40+7
    for name, vid in (("1e8", 10 ** 8), ("2p32_plus_5", 2 ** 32 + 5), ("2p31", 2 ** 31), ("2e9", 2 * 10 ** 9)):
        t = json.loads(json.dumps(tok))
        t["model"]["vocab"]["zzz"] = vid
        put("tokenizer_json", "issue17_vocab_id_" + name, json.dumps(t))
    t = json.loads(json.dumps(tok))
    t["added_tokens"].append({"id": 2 ** 40 + 7, "content": "<big>", "special": True})
    put("tokenizer_json", "issue17_added_token_2p40_plus_7", json.dumps(t))
    t = json.loads(json.dumps(tok))
    t["pre_tokenizer"]["add_prefix_space"] = "yes"
    put("tokenizer_json", "issue17_type_error_302", json.dumps(t))

    # preference rows
    for i, line in enumerate((DATA / "llama-gqa" / "pairs.jsonl").read_text().splitlines()[:3]):
        put("preference_row", "fixture_%d" % i, line)
    put("preference_row", "implicit_prompt", '{"chosen": "The sky is blue.", "rejected": "The sky is green."}')
    put("preference_row", "conversational",
        '{"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],'
        ' "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]}')
    put("preference_row", "surrogate", '{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}')
    put("preference_row", "issue17_nested_100k", '{"chosen": ' + nested(100000) + "}")
    put("preference_row", "issue17_nested_meta", '{"chosen": "a", "rejected": "b", "meta": ' + nested(100) + "}")
    # item 3: a row above the 8 MiB default would be 8 MiB here; 9 MB is kept out of the repository.


if __name__ == "__main__":
    main()
