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
    for t in ("safetensors", "model_config", "tokenizer_json", "preference_row", "chat_template", "csv_import",
              "jsonl_import"):
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

    # chat templates: every real template of the fixtures, then hostile ones (the target renders with small
    # limits; each must end in an error quickly). A NUL byte separates a template from a context of its own.
    for d in sorted((DATA / "chat-templates").iterdir()):
        if (d / "template.jinja").exists():
            put("chat_template", "real_" + d.name, (d / "template.jinja").read_bytes())
    hostile = {
        "parens_5000": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
        "lists_5000": "{{ " + "[" * 5000 + "]" * 5000 + " }}",
        "if_3000": "{% if true %}" * 3000 + "{% endif %}" * 3000,
        "plus_20000": "{{ 1" + " + 1" * 20000 + " }}",
        "filters_20000": "{{ 'x'" + "|trim" * 20000 + " }}",
        "minus_20000": "{{ " + "-" * 20000 + "1 }}",
        "range_1e9": "{% for i in range(10**9) %}x{% endfor %}",
        "loops_nested": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "output_bomb": "{% for i in range(1000000) %}{{ 'x' * 100000 }}{% endfor %}",
        "string_1e12": "{{ 'x' * 10**12 }}",
        "string_doubling": "{% set ns = namespace(s='xy') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "list_doubling": "{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "replace_bomb": "{{ ('x' * 1000000) | replace('x', 'x' * 1000) }}",
        "indent_1e12": "{{ 'x' | indent(10**12) }}",
        "pow_overflow": "{{ 2 ** 10**18 }}",
        "macro_recursion": "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}",
        "macro_mutual": "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}",
        "call_recursion": "{% macro r(n) %}{% call r(n) %}x{% endcall %}{% endmacro %}{{ r(0) }}",
        "loop_recursive": "{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}",
        "value_nesting": "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
        "namespace_cycle": "{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}",
        "unclosed_block": "{% for m in messages %}{{ m.content }}",
        "unclosed_tag": "{{ messages[0",
        "invalid_utf8": b"{{ '\xff\xfe' }}",
        "raise": "{{ raise_exception('no system role') }}",
        "strftime": "{{ strftime_now('%Y-%m-%d %A %B %j %p %%') }}",
        "continue_drops_message": "{% for m in messages[:-1] %}{{ m.content }}{% endfor %}",
        # found by fuzz_chat_template (SIGSEGV: a slice in a tuple subscript evaluated without its object)
        "fuzz_slice_in_tuple": "{% for m in messages[:,1] %}{{ m.cont.nt }}{% endfor %}",
    }
    for name, text in hostile.items():
        put("chat_template", "hostile_" + name, text)
    loop = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    put("chat_template", "context_deep_message", loop + "\0" + '{"messages": [{"role": "user", "content": '
        + nested(60) + "}]}")
    put("chat_template", "context_messages_not_list", loop + "\0" + '{"messages": {"role": 5}}')
    put("chat_template", "context_empty", loop + "\0" + "{}")

    # CSV import (the target's row limit is 4096 bytes)
    put("csv_import", "unjudged", "prompt,completion_a,completion_b\nq1,x,yy\nq2,xx,y\n")
    put("csv_import", "judged_crlf", "prompt,preferred,dispreferred\r\n\"2+2, please\",4,\"5\"\"?\"\r\n"
        "capital of France,Paris,\"Lyon\r\nor Nice\"\r\n")
    put("csv_import", "chosen_rejected", "Prompt , Chosen,REJECTED\np,c,r\n")
    put("csv_import", "prompts_only", "prompt\nwhat is 2+2?\n\"multi\nline\"\n\n")
    put("csv_import", "quotes", 'prompt,completion_a,completion_b\n"Say ""hi"", twice","hi, hi","hi\r\nhi"\n'
        '"x"trailing,a,"b with ""quotes"""\n""",""",""""\n')
    put("csv_import", "embedded_newlines", 'prompt,completion_a,completion_b\n"p\n2",a,b\np6,"a\n\n",b\n"p\r\r\n",a,b\n')
    put("csv_import", "bom", b"\xef\xbb\xbfprompt,completion_a,completion_b\np,a,b\n")
    put("csv_import", "bom_twice", b"\xef\xbb\xbf\xef\xbb\xbfprompt,completion_a,completion_b\np,a,b\n")
    put("csv_import", "invalid_utf8", b"prompt,completion_a,completion_b\np9,\xc3\x28,b\n\xed\xa0\x80,a,b\n"
        b"\xf4\x90\x80\x80,a,b\n\xc0\xaf,a,b\n")
    put("csv_import", "bad_rows", 'prompt,completion_a,completion_b\np4,only two\np5,,b\n , ,\np,a,b,extra\n"p11,a,b\n')
    put("csv_import", "unterminated_header", '"prompt,completion_a,completion_b\np,a,b\n')
    put("csv_import", "bad_header", "question,answer\nq,a\n")
    put("csv_import", "header_only", "prompt,completion_a,completion_b")
    put("csv_import", "empty", "")
    put("csv_import", "blank_lines", "\n\r\n   \n")
    put("csv_import", "cr_only", "prompt,completion_a,completion_b\rp,a,b\rq,c,d\r")
    put("csv_import", "nul_bytes", b"prompt,completion_a,completion_b\np\x00,a\x00,\x00b\n")
    put("csv_import", "duplicate_columns", "prompt,prompt,completion_a,completion_b,completion_a\np,q,a,b,c\n")
    # issue 17 item 3 in CSV form: a huge field (above the target's 4096-byte limit), in the header too, and
    # a record of more fields than are kept.
    put("csv_import", "huge_field", "prompt,completion_a,completion_b\np," + "a" * 10000 + ",b\nq,a,b\n")
    put("csv_import", "huge_quoted_field", 'prompt,completion_a,completion_b\np,"' + 'a""\n' * 3000 + '",b\nq,a,b\n')
    put("csv_import", "huge_header", "prompt,completion_a,completion_b" + ",x" * 3000 + "\np,a,b\n")
    put("csv_import", "many_fields", "prompt,completion_a,completion_b\n" + "," * 2000 + "\np,a,b\n")
    put("csv_import", "many_columns_header", ",".join(["prompt", "completion_a", "completion_b"] + ["c%d" % i for i in range(1100)])
        + "\n" + "p,a,b" + ",x" * 1100 + "\n")


    # JSON Lines import: a first byte (even: TRL rows, odd: prompts-only rows), then the file (the target's
    # row limit is 4096 bytes).
    rows = [l for l in (DATA / "llama-gqa" / "pairs.jsonl").read_text().splitlines()[:3] if len(l) < 4000]
    put("jsonl_import", "trl_fixture", "\x00" + "\n".join(rows) + "\n")
    put("jsonl_import", "trl_mixed", "\x00" + "\n".join([
        '{"prompt": "Write \\"hello\\"\\nin C:", "chosen": "printf()", "rejected": "print"}',
        '{"chosen": "The sky is blue.", "rejected": "The sky is green."}',
        '{"prompt": [{"role": "user", "content": "Hi!"}], "chosen": [{"role": "assistant", "content": "Hello"}],'
        ' "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "Go"}]}]}',
        '{"chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],'
        ' "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}]}',
        '', '   ', '[1, 2]', '{"prompt": "p", "chosen": 8, "rejected": "r"}', '{"prompt": "p", "chosen": "c"}',
        '{"prompt": "p", "chosen": "   ", "rejected": "r"}', 'not json']) + "\r\n")
    put("jsonl_import", "prompts", "\x01" + '{"prompt": "one"}\n{"prompt": [{"role": "user", "content": "two"}]}\n'
        '{"text": "x"}\n')
    put("jsonl_import", "bom", b"\x00\xef\xbb\xbf" + b'{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    put("jsonl_import", "surrogates", "\x00" + '{"prompt": "\\ud800", "chosen": "a", "rejected": "b"}\n'
        '{"prompt": "\\ud83d\\ude00", "chosen": "a", "rejected": "b"}\n{"\\udfff": 1, "chosen": "a", "rejected": "b"}\n')
    put("jsonl_import", "invalid_utf8", b"\x00" + b'{"prompt": "\xff\xfe", "chosen": "c", "rejected": "r"}\n'
        b'{"prompt": "\xed\xa0\x80", "chosen": "c", "rejected": "r"}\n')
    # issue 17: nesting (100,000 levels, also in a key position and unclosed) and a row above the limit
    put("jsonl_import", "issue17_nested_100k", "\x00" + '{"prompt": "p", "chosen": ' + nested(100000)
        + ', "rejected": "r"}\n{"prompt": ' + "{" * 100000 + "\n")
    put("jsonl_import", "nested_65", "\x00" + '{"prompt": "p", "chosen": "c", "rejected": "r", "m": ' + nested(64) + "}\n")
    put("jsonl_import", "brackets_in_strings", "\x00" + '{"prompt": "[[{{\\"", "chosen": "' + "[" * 3000
        + '", "rejected": "r"}\n')
    put("jsonl_import", "row_above_limit", "\x00" + '{"prompt": "p", "chosen": "' + "x" * 5000 + '", "rejected": "r"}\n'
        '{"prompt": "p", "chosen": "c", "rejected": "r"}')


if __name__ == "__main__":
    main()
