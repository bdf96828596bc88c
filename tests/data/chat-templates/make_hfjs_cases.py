#!/usr/bin/env python3
"""Generates hfjs_e2e_cases.json: the real Hub chat templates and example contexts of
huggingface.js packages/jinja/test/e2e.test.js (TEST_CUSTOM_TEMPLATES, commit 622b12b of
huggingface/huggingface.js), with expected renders made by Python jinja2 configured like
transformers (make_jinja_cases.make_env, strftime_now fixed at 2024-07-26T12:00:00).
The JavaScript file's expected strings are not used (the JS port differs from Python in places).

Input: a JSON list [{"id", "template", "context"}] extracted from the JS file with node, e.g.
  (sed -n '1,/^const TEST_CUSTOM_FORMATTING/p' e2e.test.js | grep -v '^import ' | sed '$d';
   echo 'console.log(JSON.stringify(Object.entries(TEST_CUSTOM_TEMPLATES).map(([k,v]) =>
   ({id: k, template: v.chat_template, context: v.data}))))') > x.mjs && node x.mjs > e2e.json
Run: python3 make_hfjs_cases.py e2e.json > hfjs_e2e_cases.json
"""
import json
import sys

from make_jinja_cases import FIXED_NOW, make_env


def main():
    env = make_env()
    out = []
    for c in json.load(open(sys.argv[1])):
        case = {"id": c["id"], "template": c["template"], "context": c["context"]}
        try:
            case["expected"] = env.from_string(c["template"]).render(**c["context"])
        except Exception as e:  # noqa: BLE001
            case["error"] = f"{type(e).__name__}: {e}"
        out.append(case)
    json.dump({"generator": "make_hfjs_cases.py", "now": FIXED_NOW.isoformat(), "cases": out}, sys.stdout,
              ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
