#!/usr/bin/env python3
"""Generates jinja_cases.json: small Jinja templates with their expected renders, computed by
Python's jinja2 (3.1) configured as transformers configures it for chat templates
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, a {% generation %} tag,
transformers' tojson, raise_exception, strftime_now with a fixed clock).

Each case: {"id", "template", "extra_context"?, "expected"} or, when jinja2 raises, {"id",
"template", "extra_context"?, "error": "<ExceptionType>: <message>"}; every case renders with the
file's shared "context" updated by its "extra_context". The C++ test only checks that an error is
raised for error cases (messages differ), and byte equality otherwise.

Run: python3 make_jinja_cases.py > jinja_cases.json
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

FIXED_NOW = datetime(2024, 7, 26, 12, 0, 0)


class GenerationTag(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


MSGS = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What's 2+2?"},
]
CTX = {
    "messages": MSGS,
    "s": "  Hello, World  ",
    "u": "héllo wörld ünïcode",
    "n": None,
    "t": True,
    "f": False,
    "i": 7,
    "neg": -3,
    "x": 2.5,
    "l": [3, 1, 2],
    "words": ["banana", "Apple", "cherry", "apple"],
    "d": {"b": 2, "a": 1, "items": "key-named-items"},
    "nested": {"a": {"b": {"c": "deep"}}, "list": [{"k": 1}, {"k": 2}]},
    "people": [{"name": "Ann", "age": 31, "tags": ["x"]}, {"name": "bob", "age": 25},
               {"name": "Cid", "age": 31, "nick": None}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather ‘now’ <b>&",
                                                "parameters": {"type": "object", "properties": {
                                                    "city": {"type": "string"}}, "required": ["city"]}}}],
    "floats": [0.5, 22.5, 1e-05, 1e16, 123456789.0, 0.1, 3.0, -0.0, 1.5e300],
    "esc": "quote\" back\\ nl\n tab\t ctl\x01 uni\u2028 é <>&'",
    "empty": "",
    "el": [],
    "ed": {},
    "mixed": [1, "a", None, True, 2.0, [1, 2], {"k": "v"}],
    "q1": "it's",
    "q2": "say \"hi\"",
    "q3": "both ' and \"",
    "ints": [5, 3, 8, 1],
}

CASES = [
    # printing / Python str()
    ("print_none", "{{ n }}|{{ t }}|{{ f }}|{{ i }}|{{ x }}"),
    ("print_list", "{{ l }}"),
    ("print_dict", "{{ d }}"),
    ("print_mixed", "{{ mixed }}"),
    ("print_floats", "{% for v in floats %}{{ v }};{% endfor %}"),
    ("print_float_math", "{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 10 / 2 }} {{ 2 ** 0.5 }} {{ 1e3 }} {{ 1.0e-7 }}"),
    ("print_quotes_repr", "{{ [q1, q2, q3] }}"),
    ("print_escape_repr", "{{ [esc] }}"),
    ("print_unicode_repr", "{{ [u, 'ü\u00a0x\u200by'] }}"),
    ("print_tuple", "{{ (1, 'a') }} {{ (1,) }} {{ () }}"),
    ("print_nested", "{{ nested }}"),
    ("print_undefined", "[{{ missing }}]"),
    ("print_namespace", "{% set ns = namespace(a=1, b='x') %}{{ ns }}"),
    ("print_dict_items_list", "{{ d.items() | list }}"),
    # whitespace control
    ("ws_trim_blocks", "{% if t %}\nyes\n{% endif %}\nend"),
    ("ws_lstrip_blocks", "  {% if t %}\n    body\n  {% endif %}\nafter"),
    ("ws_minus", "a   {%- if t -%}   b   {%- endif -%}   c"),
    ("ws_var_minus", "a  {{- 'x' -}}  b\n  {{ 'y' }}  \n"),
    ("ws_comment", "a\n  {# comment #}\nb {#- c -#} c"),
    ("ws_plus_lstrip", "  {%+ if t %}x{% endif %}"),
    ("ws_trailing_newline", "line\n"),
    ("ws_two_trailing_newlines", "line\n\n"),
    ("ws_crlf", "a\r\n{% if t %}\r\nb\r\n{% endif %}\r\nc"),
    ("ws_inline_tags", "x {% if t %} y {% endif %} z"),
    ("ws_multiline_tag", "{%\n  set a = 1\n%}\n{{ a }}"),
    ("ws_lstrip_not_var", "  {{ 'v' }}\n  {% set z = 1 %}\nz"),
    ("ws_minus_newlines", "{%- for m in messages -%}\n\n  {{ m.role }}\n\n{%- endfor -%}\n"),
    ("raw_block", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}"),
    ("raw_block_ws", "  {% raw -%}  \n text  {%- endraw %}\nafter"),
    # literals and operators
    ("literal_strings", "{{ 'a\\nb' }}|{{ \"q\\\"q\" }}|{{ 'tab\\tx' }}|{{ '\\u00e9' }}|{{ 'un\\known' }}|{{ 'x' 'y' }}"),
    ("literal_numbers", "{{ 1_000 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1.5e2 }} {{ 2e-3 }}"),
    ("arith_int", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ 7 / 2 }}"),
    ("arith_float", "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }} {{ 1 + 2.0 }} {{ true + 1 }}"),
    ("arith_precedence", "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ - i }}"),
    ("concat_tilde", "{{ 'a' ~ 1 ~ none ~ true ~ [1] ~ missing ~ 2.0 }}"),
    ("str_plus", "{{ 'a' + 'b' }}"),
    ("str_plus_int_error", "{{ 'a' + 1 }}"),
    ("list_plus", "{{ [1, 2] + [3] }} {{ l + [] }}"),
    ("list_plus_tuple_error", "{{ [1] + (2,) }}"),
    ("str_repeat", "{{ 'ab' * 3 }}|{{ 3 * '-' }}|{{ [1, 2] * 2 }}|{{ 'x' * 0 }}|{{ 'x' * -1 }}"),
    ("none_plus_error", "{{ n + 1 }}"),
    ("undefined_plus_error", "{{ missing + 1 }}"),
    ("div_zero_error", "{{ 1 / 0 }}"),
    ("compare_chain", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 2 == 2.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }}"),
    ("compare_eq_types", "{{ 1 == '1' }} {{ none == none }} {{ [1] == [1] }} {{ (1,) == [1] }} {{ {'a': 1} == {'a': 1} }} {{ true == 1 }}"),
    ("compare_mixed_error", "{{ 1 < 'a' }}"),
    ("compare_none_error", "{{ n < 1 }}"),
    ("in_operator", "{{ 'ell' in 'hello' }} {{ 2 in l }} {{ 'a' in d }} {{ 'z' not in d }} {{ 1 in missing }} {{ 'x' in el }}"),
    ("in_none_error", "{{ 1 in n }}"),
    ("in_string_int_error", "{{ 1 in 'abc' }}"),
    ("and_or_values", "{{ 0 or 'x' }}|{{ '' or none }}|{{ 1 and 'y' }}|{{ 0 and 'y' }}|{{ missing or 'dflt' }}|{{ none or [] }}"),
    ("not_truthiness", "{{ not '' }} {{ not [] }} {{ not {} }} {{ not 0.0 }} {{ not missing }} {{ not 'a' }} {{ not none }}"),
    ("truthiness_if", "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0, true, false] %}{{ 'T' if v else 'F' }}{% endfor %}"),
    ("inline_if", "{{ 'yes' if t else 'no' }} {{ 'yes' if f else 'no' }} [{{ 'only' if f }}]"),
    ("inline_if_nested", "{{ 'a' if f else 'b' if t else 'c' }}"),
    ("is_not", "{{ n is not none }} {{ i is not string }} {{ missing is not defined }}"),
    ("not_precedence", "{{ not t and f }} {{ not (t and f) }} {{ not 1 == 2 }}"),
    ("unary_neg_filter", "{{ -1 | abs }} {{ -x | abs }} {{ neg | abs }}"),
    # undefined rules
    ("undefined_iter", "[{% for x in missing %}{{ x }}{% endfor %}]"),
    ("undefined_length", "{{ missing | length }}"),
    ("undefined_default", "{{ missing | default('d') }} {{ n | default('d') }} {{ n | default('d', true) }} {{ '' | d('e', true) }}"),
    ("undefined_attr_error", "{{ missing.attr }}"),
    ("undefined_item_error", "{{ missing[0] }}"),
    ("undefined_attr_of_missing_key_error", "{{ d.nokey.x }}"),
    ("missing_key_prints_empty", "[{{ d.nokey }}][{{ d['nokey'] }}][{{ l[10] }}][{{ 'abc'[5] }}][{{ 'str'['x'] }}]"),
    ("undefined_call_error", "{{ missing() }}"),
    ("undefined_eq", "{{ missing == missing }} {{ missing == none }} {{ missing is undefined }}"),
    ("undefined_tojson_error", "{{ missing | tojson }}"),
    ("undefined_filters", "[{{ missing | upper }}][{{ missing | trim }}][{{ missing | join(',') }}][{{ missing | list }}][{{ missing | string }}][{{ missing | first }}]"),
    ("undefined_int_error", "{{ missing | int }}"),
    ("none_attr", "[{{ n.x }}][{{ n['x'] }}]"),
    ("none_iter_error", "{% for x in n %}{% endfor %}"),
    ("int_iter_error", "{% for x in i %}{% endfor %}"),
    ("none_length_error", "{{ n | length }}"),
    # attribute/item lookup
    ("attr_vs_item", "{{ d.a }} {{ d['a'] }} {{ d['items'] }} {{ d.items() | list }}"),
    ("nested_lookup", "{{ nested.a.b.c }} {{ nested['a']['b']['c'] }} {{ nested.list[1].k }} {{ nested.list.0.k }}"),
    ("dict_get", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ messages[0].get('role') }}"),
    ("dict_keys_values", "{{ d.keys() | list }} {{ d.values() | list }} {% for k in d %}{{ k }},{% endfor %}"),
    ("dict_items_loop", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"),
    ("dict_pop_unsafe_error", "{{ d.pop('a') }}"),
    ("list_append_unsafe_error", "{% set x = l.append(4) %}"),
    ("dict_update_unsafe_error", "{{ d.update({'c': 3}) }}"),
    ("negative_index", "{{ l[-1] }} {{ messages[-1].content }} {{ 'hello'[-2] }}"),
    ("unicode_index", "{{ u[1] }} {{ u[-1] }} {{ u | length }} {{ u[1:4] }}"),
    # slicing
    ("slice_basic", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[5:] }} {{ l[-2:] }}"),
    ("slice_neg_steps", "{{ [0,1,2,3,4,5][4:1:-1] }} {{ [0,1,2,3,4,5][::-2] }} {{ [0,1,2,3,4,5][-1:-4:-1] }} {{ [0,1,2,3,4,5][1:4:-1] }}"),
    ("slice_string", "{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-3:] }} {{ u[::-1] }}"),
    ("slice_messages", "{% for m in messages[1:] %}{{ m.role }} {% endfor %}|{% for m in messages[::-1] %}{{ m.role[0] }}{% endfor %}"),
    ("slice_zero_step_error", "{{ l[::0] }}"),
    ("slice_tuple", "{{ (1, 2, 3)[1:] }}"),
    # loops
    ("loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %}"),
    ("loop_prev_next", "{% for x in ['a', 'b', 'c'] %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}"),
    ("loop_prev_defined", "{% for x in [1, 2] %}{{ loop.previtem is defined }}{{ loop.nextitem is defined }} {% endfor %}"),
    ("loop_cycle", "{% for x in range(5) %}{{ loop.cycle('odd', 'even') }} {% endfor %}"),
    ("loop_changed", "{% for x in [1, 1, 2, 2, 1] %}{{ loop.changed(x) }} {% endfor %}"),
    ("loop_filter", "{% for x in range(10) if x is odd %}{{ x }}{{ loop.index }}{{ loop.last }} {% endfor %}"),
    ("loop_filter_messages", "{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }} {% endfor %}"),
    ("loop_else", "{% for x in el %}x{% else %}empty{% endfor %}|{% for x in [1] %}x{% else %}empty{% endfor %}"),
    ("loop_else_filtered", "{% for x in [1, 2] if x > 5 %}x{% else %}none-left{% endfor %}"),
    ("loop_break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("loop_nested", "{% for a in [1, 2] %}{% for b in ['x', 'y'] %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}"),
    ("loop_unpack", "{% for a, b in [[1, 2], [3, 4]] %}{{ a }}-{{ b }} {% endfor %}{% for (a, b) in [('x', 'y')] %}{{ a }}{{ b }}{% endfor %}"),
    ("loop_unpack_error", "{% for a, b in [[1, 2, 3]] %}{% endfor %}"),
    ("loop_string", "{% for c in 'héy' %}[{{ c }}]{% endfor %}"),
    ("loop_dict", "{% for k in d %}{{ k }}{% endfor %}"),
    ("loop_range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}"),
    ("loop_range_backwards_messages", "{% for i in range(messages | length - 1, -1, -1) %}{{ i }}{% endfor %}"),
    ("loop_scope", "{% set x = 'outer' %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }} {% endfor %}{{ x }}"),
    ("loop_scope_undefined", "{% for i in [1, 2] %}[{{ y }}]{% set y = i %}{% endfor %}[{{ y }}]"),
    ("loop_var_after", "{% for item in [1, 2] %}{% endfor %}[{{ item }}]"),
    ("loop_depth", "{% for a in [1] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}"),
    ("loop_recursive", "{% for item in [{'n': 'a', 'c': [{'n': 'b', 'c': []}]}] recursive %}{{ item.n }}{{ loop.depth }}({{ loop(item.c) }}){% endfor %}"),
    ("loop_loop_outside_undefined", "[{{ loop }}]"),
    # namespace and set
    ("namespace_set", "{% set ns = namespace(count=0, found=false) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.count = ns.count + 1 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}"),
    ("namespace_item", "{% set ns = namespace(a=1) %}{{ ns['a'] }} {{ ns.missing is defined }}"),
    ("namespace_from_dict", "{% set ns = namespace({'a': 5}, b=6) %}{{ ns.a }}{{ ns.b }}"),
    ("set_attr_non_namespace_error", "{% set d2 = {} %}{% set d2.x = 1 %}"),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c, e = [3, 4] %}{{ c }}{{ e }}"),
    ("set_block", "{% set block %}Hello {{ 'there' }}!{% endset %}[{{ block }}]"),
    ("set_block_filter", "{% set block | upper | trim %}  shout  {% endset %}[{{ block }}]"),
    ("set_in_if_leaks", "{% if t %}{% set z = 'set in if' %}{% endif %}{{ z }}"),
    ("set_top_shadows_context", "{% set messages = messages[1:] %}{{ messages | length }}"),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]"),
    # macros
    ("macro_basic", "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(name='Cid', greeting='Yo') }}"),
    ("macro_returns_string", "{% macro m() %}  x  {% endmacro %}[{{ m() }}][{{ m() | trim }}][{{ m() | length }}]"),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}][{{ b is defined }}]{% endmacro %}{{ m(1) }}"),
    ("macro_too_many_args_error", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}"),
    ("macro_varargs_kwargs", "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}"),
    ("macro_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner {{ 1 + 1 }}{% endcall %}"),
    ("macro_caller_args", "{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}"),
    ("macro_sees_globals", "{% macro m() %}{{ t }}|{{ later }}{% endmacro %}{{ m() }}{% set later = 'L' %}{{ m() }}"),
    ("macro_scope_no_leak", "{% macro m() %}{% set inner = 1 %}{% endmacro %}{{ m() }}[{{ inner }}]"),
    ("macro_recursive", "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * (fact(k - 1) | int) }}{% endif %}{% endmacro %}{{ fact(5) }}"),
    ("macro_namespace_mutation", "{% set ns = namespace(v=0) %}{% macro bump() %}{% set ns.v = ns.v + 1 %}{% endmacro %}{{ bump() }}{{ bump() }}{{ ns.v }}"),
    ("call_star_args", "{% macro m(a, b='B', c='C') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(*['x', 'y']) }} {{ m(**{'a': 1, 'c': 3}) }} {{ m(0, *[1], **{'c': 2}) }} {% set fs = [m] %}{{ fs[0](*[[7], 8]) }}"),
    ("macro_default_refers_arg", "{% macro m(a, b=a + 1) %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}"),
    # filter block, generation
    ("filter_block", "{% filter upper %}hello {{ 'world' }}{% endfilter %}"),
    ("generation_block", "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endif %}{% endfor %}"),
    ("generation_scope", "{% generation %}{% set g = 1 %}{{ g }}{% endgeneration %}[{{ g }}]"),
    # raise_exception and strftime_now
    ("raise_exception", "{% if t %}{{ raise_exception('Custom failure: ' ~ i) }}{% endif %}"),
    ("strftime_now", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %A %a %j %p %I %y %-d %U %W %V %G %u %w') }}"),
    # string methods
    ("str_strip", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ 'xxhixx'.strip('x') }}][{{ '\\n a \\n'.strip() }}][{{ 'abcba'.lstrip('ab') }}]"),
    ("str_split", "{{ 'a,b,,c'.split(',') }} {{ '  a  b  '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'x'.split(',') }} {{ 'a</think>b'.split('</think>')[-1] }}"),
    ("str_rsplit", "{{ 'a.b.c'.rsplit('.', 1) }} {{ ' a b '.rsplit() }}"),
    ("str_split_empty_sep_error", "{{ 'abc'.split('') }}"),
    ("str_starts_ends", "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.startswith('l', 2) }} {{ ''.endswith('') }}"),
    ("str_replace", "{{ 'aaa'.replace('a', 'b') }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.replace('', '-') }}"),
    ("str_case", "{{ 'hello world'.upper() }} {{ 'HeLLo'.lower() }} {{ \"they're bill's friends\".title() }} {{ 'hello WORLD'.capitalize() }} {{ u.upper() }} {{ 'straße'.upper() }}"),
    ("str_count_find", "{{ 'banana'.count('a') }} {{ 'banana'.find('n') }} {{ 'banana'.rfind('n') }} {{ 'banana'.find('z') }} {{ u.find('w') }}"),
    ("str_format_method", "{{ '{} and {}'.format('a', 1) }} {{ '{1}{0}'.format('x', 'y') }} {{ '{name}!'.format(name='N') }} {{ '{:>5}|{:<4}|{:^7}|'.format('r', 'l', 'c') }} {{ '{:.2f} {:05d} {:,}'.format(3.14159, 42, 1234567) }} {{ '{!r}'.format('q') }} {{ '{{x}}'.format() }}"),
    ("str_join_method", "{{ ', '.join(['a', 'b']) }} {{ '-'.join('xyz') }}"),
    ("str_misc_methods", "{{ 'abc'.isalpha() }} {{ '123'.isdigit() }} {{ ' '.isspace() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }} {{ 'x'.center(5) }}| {{ '5'.zfill(3) }} {{ 'a-b'.partition('-') }} {{ 'pre_x'.removeprefix('pre_') }}"),
    ("str_splitlines", "{{ 'a\\nb\\r\\nc\\rd'.splitlines() }} {{ 'x\\n'.splitlines(true) }}"),
    ("str_percent_format", "{{ '%s is %d years' % ('Ann', 31) }} {{ '%.2f' % 3.14159 }} {{ '%5s|%-5s|' % ('a', 'b') }} {{ '%r' % 'x' }} {{ '100%%' % () }} {{ '%(a)s-%(b)s' % {'a': 1, 'b': 2} }} {{ '%03d %x' % (7, 255) }}"),
    ("str_unicode_methods", "{{ u.title() }} {{ u.split(' ') }} {{ u.replace('ö', 'o') }} {{ u.startswith('hé') }}"),
    # filters
    ("f_tojson_basic", "{{ tools | tojson }}"),
    ("f_tojson_indent", "{{ tools | tojson(indent=4) }}"),
    ("f_tojson_indent2_nested_empty", "{{ {'a': [], 'b': {}, 'c': [1, {'d': none}]} | tojson(indent=2) }}"),
    ("f_tojson_separators", "{{ tools | tojson(separators=(',', ':')) }}"),
    ("f_tojson_ascii", "{{ {'k': 'é😀\\u2028'} | tojson(ensure_ascii=true) }} {{ 'é' | tojson }}"),
    ("f_tojson_escapes", "{{ esc | tojson }}"),
    ("f_tojson_floats", "{{ floats | tojson }}"),
    ("f_tojson_sort_keys", "{{ d | tojson(sort_keys=true) }}"),
    ("f_tojson_scalars", "{{ none | tojson }} {{ true | tojson }} {{ 1 | tojson }} {{ 'a\"b' | tojson }} {{ (1, 2) | tojson }}"),
    ("f_tojson_nonstr_keys", "{{ {1: 'a', none: 'b', true: 'c', 2.5: 'd'} | tojson }}"),
    ("f_tojson_indent_string", "{{ [1, [2]] | tojson(indent='\\t') }}"),
    ("f_trim", "[{{ s | trim }}][{{ 'xxaxx' | trim('x') }}][{{ 5 | trim }}][{{ none | trim }}]"),
    ("f_length_count", "{{ l | length }} {{ 'héllo' | length }} {{ d | count }} {{ el | length }}"),
    ("f_join", "{{ l | join(', ') }} {{ l | join }} {{ people | join('/', attribute='name') }} {{ [1, none, 'a'] | join('-') }}"),
    ("f_first_last", "{{ l | first }} {{ l | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ el | first }}] {{ d | first }}"),
    ("f_list", "{{ 'abc' | list }} {{ d | list }} {{ (1, 2) | list }}"),
    ("f_string", "{{ 1 | string }} {{ none | string }} {{ [1, 'a'] | string }} {{ (1 | string) + 'x' }}"),
    ("f_int_float", "{{ '42' | int }} {{ '4.7' | int }} {{ 'abc' | int }} {{ 'abc' | int(9) }} {{ 3.9 | int }} {{ '0x1A' | int(base=16) }} {{ ' 12 ' | int }} {{ none | int }} {{ '1.5' | float }} {{ 'x' | float }} {{ 3 | float }} {{ true | int }}"),
    ("f_items_dictsort", "{{ d | items | list }} {{ d | dictsort }} {{ d | dictsort(reverse=true) }} {{ {'b': 1, 'A': 2, 'a': 3} | dictsort }} {{ {'b': 1, 'A': 2, 'c': 0} | dictsort(true) }} {{ {'x': 2, 'y': 1} | dictsort(by='value') }}"),
    ("f_items_error", "{{ l | items | list }}"),
    ("f_indent", "[{{ 'a\\nb\\n\\nc' | indent }}][{{ 'a\\nb' | indent(2, true) }}][{{ 'a\\n\\nb' | indent(2, blank=true) }}][{{ 'x' | indent('> ', first=true) }}][{{ 'a\\nb\\n' | indent(3) }}]"),
    ("f_capitalize_title_case", "{{ 'hELLO wORLD' | capitalize }} {{ 'hello-world foo(bar) [x] <y' | title }} {{ \"it's o'neil\" | title }} {{ 'MiXeD' | upper }} {{ 'MiXeD' | lower }}"),
    ("f_replace", "{{ 'hello' | replace('l', 'L') }} {{ 'hello' | replace('l', 'L', 1) }} {{ 5 | replace('5', 'five') }} {{ none | replace('o', '0') }}"),
    ("f_default_alias", "{{ missing | d('x') }} {{ false | default('y') }} {{ false | default('y', boolean=true) }}"),
    ("f_safe", "{{ '<b>' | safe }} {{ ('<' ~ 'x') | safe }} {{ ('a' | safe) is string }}"),
    ("f_safe_concat_escapes", "{{ '<' + ('b' | safe) }} {{ ('b' | safe) + '<' }} {{ ('<' | safe) + ('>' | safe) }}"),
    ("f_escape", "{{ '<a href=\"x\">&\\'</a>' | e }} {{ '<' | escape | escape }}"),
    ("f_selectattr", "{{ people | selectattr('age', 'equalto', 31) | map(attribute='name') | list }} {{ people | selectattr('nick', 'defined') | map(attribute='name') | list }} {{ people | selectattr('tags') | list | length }} {{ people | selectattr('name', 'in', ['bob', 'x']) | list | length }}"),
    ("f_rejectattr", "{{ people | rejectattr('age', 'eq', 31) | map(attribute='name') | list }} {{ people | rejectattr('nick', 'undefined') | map(attribute='name') | join(',') }} {{ messages | rejectattr('role', 'equalto', 'system') | list | length }}"),
    ("f_select_reject", "{{ ints | select('odd') | list }} {{ ints | reject('odd') | list }} {{ [0, 1, '', 'a', none] | select | list }} {{ ints | select('gt', 3) | list }} {{ ints | select('divisibleby', 4) | list }} {{ words | select('lower') | list }}"),
    ("f_map", "{{ people | map(attribute='name') | list }} {{ l | map('string') | list }} {{ words | map('upper') | join(' ') }} {{ people | map(attribute='nick', default='-') | list }} {{ ['a b', 'c'] | map('replace', ' ', '_') | list }} {{ nested.list | map(attribute='k') | sum }}"),
    ("f_sort", "{{ ints | sort }} {{ ints | sort(reverse=true) }} {{ words | sort }} {{ words | sort(case_sensitive=true) }} {{ people | sort(attribute='age') | map(attribute='name') | list }} {{ people | sort(attribute='age,name') | map(attribute='name') | list }}"),
    ("f_sort_mixed_error", "{{ [1, 'a'] | sort }}"),
    ("f_unique", "{{ words | unique | list }} {{ words | unique(case_sensitive=true) | list }} {{ [1, 2, 1, 1.0, true] | unique | list }} {{ people | unique(attribute='age') | map(attribute='name') | list }}"),
    ("f_reverse", "{{ l | reverse | list }} {{ 'abc' | reverse }} {{ u | reverse }}"),
    ("f_abs_round", "{{ -5 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 5 | round }} {{ 1.2345 | round(2, 'floor') }} {{ 1.2345 | round(1, 'ceil') }} {{ 0.125 | round(2) }} {{ -0.5 | round }}"),
    ("f_wordcount", "{{ 'Hello world, this is_a test-case' | wordcount }} {{ '' | wordcount }}"),
    ("f_min_max_sum", "{{ ints | min }} {{ ints | max }} {{ ints | sum }} {{ words | min }} {{ words | max }} {{ people | max(attribute='age') }} {{ people | sum(attribute='age') }} [{{ el | max }}] {{ [0.5, 1] | sum(start=10) }}"),
    ("f_batch", "{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3] | batch(2, 'x') | list }}"),
    ("f_center_truncate", "[{{ 'ab' | center(6) }}] {{ 'The quick brown fox jumps over the lazy dog' | truncate(20) }} {{ 'The quick brown fox jumps over' | truncate(15, true) }} {{ 'short' | truncate(10) }}"),
    ("f_format", "{{ '%s-%s' | format('a', 'b') }} {{ '%(x)s' | format(x='y') }} {{ '%d%%' | format(50) }}"),
    ("f_attr", "{{ d | attr('items') is defined }} {{ nested | attr('a') is defined }}"),
    ("f_chain", "{{ messages | map(attribute='content') | map('length') | list | sum }} {{ (messages | selectattr('role', 'eq', 'user') | list)[-1].content }}"),
    ("f_unknown_error", "{{ 1 | no_such_filter }}"),
    # tests
    ("t_types", "{% for v in [none, true, 1, 1.5, 'a', [1], {'a': 1}, (1,)] %}{{ v is none }}{{ v is boolean }}{{ v is number }}{{ v is integer }}{{ v is float }}{{ v is string }}{{ v is sequence }}{{ v is mapping }}{{ v is iterable }}{{ v is true }}{{ v is false }} {% endfor %}"),
    ("t_undefined_types", "{{ missing is defined }}{{ missing is undefined }}{{ missing is none }}{{ missing is string }}{{ missing is iterable }}{{ missing is sequence }}{{ missing is mapping }}{{ missing is number }}"),
    ("t_numbers", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 10 is divisibleby(3) }} {{ 5 is gt 3 }} {{ 5 is lt 3 }} {{ 5 is ge 5 }} {{ 5 is le 4 }} {{ 5 is ne 5 }}"),
    ("t_equalto_eq_in", "{{ 'a' is equalto 'a' }} {{ 1 is eq 1.0 }} {{ 'a' is in ['a', 'b'] }} {{ 'z' is in 'xyz' }} {{ 2 is in d }} {{ 1 is sameas 1 }} {{ none is sameas none }}"),
    ("t_lower_upper", "{{ 'abc' is lower }} {{ 'aBc' is lower }} {{ 'ABC' is upper }} {{ '123' is upper }} {{ 'É' is upper }}"),
    ("t_callable_escaped", "{{ range is callable }} {{ 'x' is callable }} {{ ('x' | safe) is escaped }} {{ 'x' is escaped }}"),
    ("t_filter_test", "{{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }}"),
    ("t_attr_of_undefined_error", "{{ missing.x is defined }}"),
    ("t_unknown_error", "{{ 1 is no_such_test }}"),
    # comments, dict/list literals
    ("comment_multiline", "a{# multi\nline\ncomment #}b"),
    ("dict_literal", "{{ {'a': 1, 'b': [1, 2], 'c': {'d': none}} }} {{ {} }} {{ {'x': 1,} }} {{ [1, 2,] }}"),
    ("dict_literal_int_keys", "{% set m = {1: 'one', 2: 'two'} %}{{ m[1] }} {{ m[2.0] }} {{ m[true] }}"),
    ("unhashable_key_error", "{{ {[1]: 2} }}"),
    ("dict_global", "{{ dict(a=1, b=2) }}"),
    ("cycler_joiner", "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}|{% set j = joiner(', ') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}"),
    ("name_none_true_variants", "{{ True }} {{ False }} {{ None }} {{ true }} {{ none }}"),
    # syntax errors
    ("syntax_unclosed_if_error", "{% if t %}never closed"),
    ("syntax_unknown_tag_error", "{% frobnicate %}"),
    ("syntax_bad_expr_error", "{{ 1 + }}"),
    ("syntax_unclosed_var_error", "{{ 'x' "),
    ("syntax_endfor_mismatch_error", "{% for x in l %}{% endif %}"),
    ("syntax_break_outside_loop_error", "{% break %}"),
    ("syntax_unterminated_string_error", "{{ 'abc }}"),
    ("syntax_unclosed_comment_error", "{# open"),
    ("syntax_extra_paren_error", "{{ (1 + 2)) }}"),
    # constructs real templates rely on
    ("tool_string_repr", "{%- set ns = namespace(s='') -%}{%- for tool in tools[:] -%}{%- set ns.s = ns.s ~ (tool | string) ~ '\n\n' -%}{%- endfor -%}{{ ns.s }}"),
    ("items_method_quirk", "{%- macro ty(spec) -%}{%- if spec.type == 'array' -%}List[{{ ty(spec.items) }}]{%- elif spec.type is defined -%}{{ spec.type }}{%- else -%}?{%- endif -%}{%- endmacro -%}{{ ty({'type': 'array', 'items': {'type': 'string'}}) }}"),
    ("args_items_filter", "{%- for k, v in {'city': 'Paris', 'n': 3, 'f': [1, 'x'], 'o': {'a': none}} | items -%}{{ k }}={{ v if v is string else v | tojson }};{%- endfor -%}"),
    ("content_in_message", "{% for m in messages + [{'role': 'tool'}] %}{{ 'content' in m }}{{ m.content is defined }}{% endfor %}"),
    ("content_mapping_or_iterable", "{% for c in ['s', ['a'], {'k': 1}, none] %}{{ c is mapping or (c is iterable and c is not string) }}{% endfor %}"),
    ("default_boolean_content", "{% for c in ['', none, 'x'] %}[{{ c | default('dflt', true) }}]{% endfor %}"),
    ("title_keys", "{% for key, value in {'doc_title': 'x', 'snippet-text': 'y'}.items() %}{{ key | title }}: {{ value }}\n{% endfor %}"),
    ("filtered_loop_chain", "{%- for message in (messages + [{'role': 'tool', 'content': 'r'}]) | rejectattr('role', 'equalto', 'tool') | selectattr('tool_calls', 'undefined') -%}{{ loop.index0 }}{{ message.role[0] }}{{ loop.last }} {% endfor %}"),
    ("system_split_pattern", "{%- if messages[0]['role'] == 'system' -%}{%- set sys = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set loop_messages = messages -%}{%- endif -%}[{{ sys }}]{{ loop_messages | length }}"),
    ("think_split", "{%- set content = '<think>\nreason\n</think>\n\nanswer' -%}{%- set r = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') -%}{%- set c = content.split('</think>')[-1].lstrip('\n') -%}[{{ r }}][{{ c }}]"),
    ("index_from_end", "{% for message in messages[::-1] %}{% set index = (messages|length - 1) - loop.index0 %}{{ index }}{{ message.role[0] }} {% endfor %}"),
    ("next_message_lookup", "{% for m in messages %}{% if loop.last or messages[loop.index0 + 1].role != 'assistant' %}{{ loop.index0 }}{% endif %}{% endfor %}"),
    ("string_content_index", "{% set m = {'content': [{'type': 'text', 'text': 'hi'}]} %}{{ m['content'][0]['text'] if m['content'] is not string else m['content'] }}"),
    ("list_accumulate", "{% set ns = namespace(parts=[]) %}{% for m in messages %}{% set ns.parts = ns.parts + [m.role ~ ':' ~ m.content | length] %}{% endfor %}{{ ns.parts | join(', ') }}"),
    ("filter_precedence", "{{ messages | length - 1 }} {{ -messages | length }} {{ 'ab' ~ 'cd' | upper }} {{ ('ab' ~ 'cd') | upper }} {{ 1 + 2 | string }}"),
    ("tojson_safe_chain", "{{ tools[0].function.parameters | tojson | safe }}"),
    ("namespace_tojson_error", "{{ namespace(a=1) | tojson }}"),
    ("elif_chain", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %} {% endfor %}"),
    ("string_literal_newline", "{{ 'line1\nline2' }}|{{ \"a\\\\b\" }}"),
    ("macro_defined_later_call", "{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}B{% endmacro %}{{ a() }}"),
    ("is_defined_chain", "{{ messages[0].tool_calls is defined }} {{ messages[0].role is defined }} {{ nested.a.x is defined }}"),
    ("length_of_string_number", "{{ 10 | string | length }} {{ 'héllo' | count }}"),
    ("percent_none", "{{ '%s|%s' % (none, true) }}"),
    # realistic chat template fragments
    ("chatml", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    ("llama3_like", "{{- bos_token }}\n{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Today Date: \" + strftime_now(\"%d %b %Y\") + \"\\n\\n\" }}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n"),
    ("tools_loop", "{%- if tools %}\n{%- for tool in tools %}\n{{- tool | tojson(indent=2) }}\n{%- if not loop.last %}{{ '\\n\\n' }}{% endif %}\n{%- endfor %}\n{%- endif %}"),
    ("gemma_like", "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"),
]

EXTRA_CTX = {
    "chatml": {"add_generation_prompt": True},
    "llama3_like": {"add_generation_prompt": True, "bos_token": "<|begin_of_text|>"},
    "gemma_like": {"bos_token": "<bos>"},
}


def main():
    env = make_env()
    out = []
    seen = set()
    for cid, tpl in CASES:
        assert cid not in seen, cid
        seen.add(cid)
        ctx = dict(CTX)
        ctx.update(EXTRA_CTX.get(cid, {}))
        case = {"id": cid, "template": tpl}
        if cid in EXTRA_CTX:
            case["extra_context"] = EXTRA_CTX[cid]
        try:
            case["expected"] = env.from_string(tpl).render(**ctx)
        except Exception as e:  # noqa: BLE001 - any jinja2/Python error is an expected error
            case["error"] = f"{type(e).__name__}: {e}"
        out.append(case)
    json.dump({"generator": "make_jinja_cases.py", "jinja2": jinja2.__version__,
               "note": "expected values rendered by Python jinja2 configured like transformers; do not edit by hand",
               "now": FIXED_NOW.isoformat(), "context": CTX, "cases": out}, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
