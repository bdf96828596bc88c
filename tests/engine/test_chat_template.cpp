// Chat templates (engine/chat): every public fixture template renders every transformers-made case
// byte for byte (tests/data/chat-templates/<name>/cases.jsonl); unit cases for the Jinja constructs
// and 45 more Hub templates, both with expected renders produced by Python jinja2 configured like
// transformers (jinja_cases.json / hfjs_e2e_cases.json, made by make_jinja_cases.py /
// make_hfjs_cases.py); hostile templates fail fast with dpo::Error;
// model-folder template discovery; strftime; and `dpo-cli chat render`.
#include "test_util.h"

#include "engine/chat/chat_template.h"
#include "engine/error.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace test_chat_template { // this file's names, kept apart in unity builds (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

const std::string kDir = dpotest::fixture("chat-templates");

std::string readAll(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// JSONL split on '\n' only (strings may hold raw U+2028 once parsed).
std::vector<ojson> readCases(const std::string &path)
{
    std::vector<ojson> out;
    const std::string text = readAll(path);
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos)
            nl = text.size();
        const std::string line = text.substr(pos, nl - pos);
        if (!line.empty())
            out.push_back(ojson::parse(line));
        pos = nl + 1;
    }
    return out;
}

dpo::ChatRenderOptions optionsOf(const ojson &c)
{
    dpo::ChatRenderOptions o;
    if (c.contains("options")) {
        const ojson &op = c["options"];
        if (op.contains("now"))
            o.now = op["now"].get<std::string>();
        if (op.contains("continue_final_message"))
            o.continueFinalMessage = op["continue_final_message"].get<bool>();
    }
    return o;
}

std::vector<std::string> fixtureTemplates()
{
    std::vector<std::string> names;
    for (const auto &e : fs::directory_iterator(kDir))
        if (e.is_directory() && fs::exists(e.path() / "template.jinja"))
            names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

std::string render(const std::string &tpl, const ojson &ctx = ojson::object(), dpo::ChatRenderOptions o = {})
{
    return dpo::ChatTemplate::fromString(tpl).renderContext(ctx, o);
}

// Expects a dpo::Error whose message contains `needle`, within `seconds`.
void expectFastError(const std::string &tpl, const std::string &needle, double seconds = 15.0,
                     const ojson &ctx = ojson::object(), dpo::ChatRenderOptions o = {})
{
    const auto t0 = std::chrono::steady_clock::now();
    try {
        render(tpl, ctx, o);
        ADD_FAILURE() << "no error for: " << tpl.substr(0, 120);
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(dt, seconds) << tpl.substr(0, 120);
}

} // namespace

TEST(ChatTemplate, FixtureTemplatesRenderEveryCaseByteForByte)
{
    const auto names = fixtureTemplates();
    ASSERT_GE(names.size(), 15u);
    int total = 0, passed = 0;
    for (const auto &name : names) {
        SCOPED_TRACE(name);
        const auto tpl = dpo::ChatTemplate::fromFile(kDir + "/" + name + "/template.jinja");
        for (const ojson &c : readCases(kDir + "/" + name + "/cases.jsonl")) {
            ++total;
            const std::string id = c["id"].get<std::string>();
            if (c.contains("error")) {
                EXPECT_THROW(tpl.renderContext(c["context"], optionsOf(c)), dpo::Error) << id;
                ++passed;
                continue;
            }
            try {
                const std::string out = tpl.renderContext(c["context"], optionsOf(c));
                EXPECT_EQ(out, c["expected"].get<std::string>()) << name << "/" << id;
                passed += out == c["expected"].get<std::string>();
            } catch (const dpo::Error &e) {
                ADD_FAILURE() << name << "/" << id << ": " << e.what();
            }
        }
    }
    EXPECT_EQ(total, 279);
    EXPECT_EQ(passed, total);
}

TEST(ChatTemplate, JinjaCasesMatchPythonJinja2)
{
    const ojson doc = ojson::parse(readAll(kDir + "/jinja_cases.json"));
    dpo::ChatRenderOptions o;
    o.now = doc["now"].get<std::string>();
    int n = 0;
    for (const ojson &c : doc["cases"]) {
        ++n;
        const std::string id = c["id"].get<std::string>();
        ojson ctx = doc["context"];
        if (c.contains("extra_context"))
            for (auto it = c["extra_context"].begin(); it != c["extra_context"].end(); ++it)
                ctx[it.key()] = it.value();
        if (c.contains("error")) {
            try {
                const std::string out = render(c["template"].get<std::string>(), ctx, o);
                ADD_FAILURE() << id << ": expected an error like \"" << c["error"].get<std::string>() << "\", got \""
                              << out << "\"";
            } catch (const dpo::Error &) {
            }
            continue;
        }
        try {
            EXPECT_EQ(render(c["template"].get<std::string>(), ctx, o), c["expected"].get<std::string>()) << id;
        } catch (const dpo::Error &e) {
            ADD_FAILURE() << id << ": " << e.what();
        }
    }
    EXPECT_GE(n, 200);
}

TEST(ChatTemplate, HubTemplatesFromHuggingfaceJsMatchPythonJinja2)
{
    // 45 more real templates (Llama 3.1/3.2, Qwen 2.5/3, DeepSeek-R1, Command-R/A, Hermes 2 Pro,
    // Mistral v0.3/Nemo, SmolLM3, GLM, ...) with contexts from huggingface.js's e2e tests and
    // expected renders from Python jinja2 (make_hfjs_cases.py).
    const ojson doc = ojson::parse(readAll(kDir + "/hfjs_e2e_cases.json"));
    dpo::ChatRenderOptions o;
    o.now = doc["now"].get<std::string>();
    int n = 0;
    for (const ojson &c : doc["cases"]) {
        ++n;
        const std::string id = c["id"].get<std::string>();
        try {
            const std::string out = render(c["template"].get<std::string>(), c["context"], o);
            if (c.contains("error"))
                ADD_FAILURE() << id << ": expected an error";
            else
                EXPECT_EQ(out, c["expected"].get<std::string>()) << id;
        } catch (const dpo::Error &e) {
            if (!c.contains("error"))
                ADD_FAILURE() << id << ": " << e.what();
        }
    }
    EXPECT_EQ(n, 45);
}

TEST(ChatTemplate, ErrorsNameLineAndColumnAndRaiseExceptionMessage)
{
    try {
        render("line one\n{% if true %}\n  {{ raise_exception('Only user and assistant roles are supported!') }}\n{% endif %}");
        FAIL() << "no error";
    } catch (const dpo::Error &e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("Only user and assistant roles are supported!"), std::string::npos) << m;
        EXPECT_NE(m.find("line 3"), std::string::npos) << m;
        EXPECT_NE(m.find("column"), std::string::npos) << m;
    }
    try {
        render("ok\n\n   {{ 1 + }}");
        FAIL() << "no error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("line 3, column"), std::string::npos) << e.what();
    }
    try {
        render("{% for m in messages %}\n{{ m.content.x.y }}{% endfor %}", ojson::parse(R"({"messages":[{"content":{}}]})"));
        FAIL() << "no error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("has no attribute 'x'"), std::string::npos) << e.what();
    }
}

TEST(ChatTemplate, HostileTemplatesFailFast)
{
    // parser nesting
    expectFastError("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}", "nested deeper");
    expectFastError("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}", "nested deeper");
    {
        std::string t;
        for (int i = 0; i < 3000; ++i)
            t += "{% if true %}";
        for (int i = 0; i < 3000; ++i)
            t += "{% endif %}";
        expectFastError(t, "nested deeper");
    }
    {
        std::string t = "{{ 1";
        for (int i = 0; i < 100000; ++i)
            t += " + 1";
        expectFastError(t + " }}", "nested deeper");
        std::string f = "{{ 'x'";
        for (int i = 0; i < 100000; ++i)
            f += "|trim";
        expectFastError(f + " }}", "nested deeper");
        expectFastError("{{ " + std::string(100000, '-') + "1 }}", "nested deeper");
        std::string n = "{{ ";
        for (int i = 0; i < 50000; ++i)
            n += "not ";
        expectFastError(n + "1 }}", "nested deeper");
    }
    // a slice inside a tuple subscript (fuzz_chat_template: evaluated without its object, SIGSEGV)
    expectFastError("{% for m in messages[:,1] %}{{ m.cont.nt }}{% endfor %}", "slice cannot be combined");
    expectFastError("{{ x[1, 2:3] }}", "slice cannot be combined");
    // loops
    expectFastError("{% for i in range(10**9) %}x{% endfor %}", "limit");
    expectFastError("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "loop iterations");
    expectFastError("{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}{% endfor %}{% endfor %}{% endfor %}",
                    "loop iterations");
    // output and value size
    expectFastError("{% for i in range(1000000) %}{{ 'x' * 100000 }}{% endfor %}", "limit");
    expectFastError("{{ 'x' * 10**12 }}", "limit");
    expectFastError("{% set ns = namespace(s='xy') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "limit");
    expectFastError("{% set ns = namespace(s='xy') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "limit");
    expectFastError("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "limit");
    expectFastError("{{ [1] * 10**12 }}", "limit");
    expectFastError("{{ ('x' * 1000000) | replace('x', 'x' * 1000) }}", "limit");
    expectFastError("{{ 'x' | indent(10**12) }}", "limit");
    expectFastError("{{ 'x' | center(10**12) }}", "limit");
    expectFastError("{{ 'x'.ljust(10**12) }}", "limit");
    expectFastError("{{ 2 ** 10**18 }}", "overflow");
    // recursion
    expectFastError("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", "nested deeper");
    expectFastError("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}", "nested deeper");
    expectFastError("{% macro r(n) %}{% call r(n) %}x{% endcall %}{% endmacro %}{{ r(0) }}", "nested deeper");
    expectFastError("{% for x in [[1]] recursive %}{{ loop([x]) }}{% endfor %}", "nested deeper");
    // values nested too deep
    expectFastError("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
                    "nested deeper");
    expectFastError("{% set ns = namespace(n=none) %}{% for i in range(100000) %}{% set ns.n = namespace(p=ns.n) %}{% endfor %}{{ ns.n }}",
                    "nested deeper");
    expectFastError("{{ x }}", "nested deeper", 15.0, ojson::parse("{\"x\":" + std::string(2000, '[') + std::string(2000, ']') + "}"));
    // a cycle through a namespace is printed with a depth error, not a crash
    expectFastError("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}", "nested deeper");
    // step budget: many cheap operations
    {
        dpo::ChatRenderOptions o;
        o.limits.maxSteps = 100000;
        expectFastError("{% for i in range(100000) %}{{ i + i }}{% endfor %}", "evaluation steps", 15.0, ojson::object(), o);
    }
}

TEST(ChatTemplate, LimitsLeaveRealisticConversationsAlone)
{
    // 5000 messages through the most elaborate fixture template
    ojson messages = ojson::array();
    messages.push_back({ { "role", "system" }, { "content", "sys" } });
    for (int i = 0; i < 2500; ++i) {
        messages.push_back({ { "role", "user" }, { "content", "question " + std::to_string(i) } });
        messages.push_back({ { "role", "assistant" }, { "content", "<think>r</think>answer " + std::to_string(i) } });
    }
    ojson ctx = { { "messages", messages }, { "tools", nullptr }, { "documents", nullptr }, { "add_generation_prompt", true } };
    const auto tpl = dpo::ChatTemplate::fromFile(kDir + "/qwen3.5-4b/template.jinja");
    const auto t0 = std::chrono::steady_clock::now();
    const std::string out = tpl.renderContext(ctx);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(out.find("answer 2499"), std::string::npos);
    EXPECT_LT(dt, 10.0);
}

TEST(ChatTemplate, ApplyBuildsTransformersVariables)
{
    const auto tpl = dpo::ChatTemplate::fromString(
        "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}|{{ tools is none }}|{{ documents is none }}|"
        "{{ unk_token is defined }}|{{ enable_thinking }}");
    dpo::ChatRequest req;
    req.messages = ojson::parse(R"([{"role":"user","content":"hi"}])");
    req.addGenerationPrompt = true;
    req.specialTokens = { { "bos_token", "<s>" } };
    req.extraKwargs = { { "enable_thinking", false } };
    EXPECT_EQ(tpl.apply(req), "<s><user>hi<assistant>|True|True|False|False");
    dpo::ChatRenderOptions o;
    o.continueFinalMessage = true;
    EXPECT_THROW(tpl.apply(req, o), dpo::Error); // with add_generation_prompt
}

TEST(ChatTemplate, ContinueFinalMessage)
{
    const auto tpl = dpo::ChatTemplate::fromString(
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content | trim }}<|end|>\n{% endfor %}");
    const ojson ctx = ojson::parse(R"({"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"I am  "}]})");
    dpo::ChatRenderOptions o;
    o.continueFinalMessage = true;
    // `trim` removes the tag's trailing space: the text before the tag is right-stripped.
    EXPECT_EQ(tpl.renderContext(ctx, o), "<|user|>Hi<|end|>\n<|assistant|>I am");
    const auto keep = dpo::ChatTemplate::fromString("{% for m in messages %}[{{ m.content }}]{% endfor %}");
    EXPECT_EQ(keep.renderContext(ctx, o), "[Hi][I am  ");
    const auto drops = dpo::ChatTemplate::fromString("{% for m in messages %}[{{ m.role }}]{% endfor %}");
    EXPECT_THROW(drops.renderContext(ctx, o), dpo::Error);
    // list content: the last text block is continued
    const ojson blocks = ojson::parse(
        R"({"messages":[{"role":"assistant","content":[{"type":"text","text":"A"},{"type":"image"},{"type":"text","text":"B"}]}]})");
    const auto bt = dpo::ChatTemplate::fromString(
        "{% for m in messages %}{% for c in m.content %}{% if c.type == 'text' %}{{ c.text }};{% endif %}{% endfor %}{% endfor %}END");
    EXPECT_EQ(bt.renderContext(blocks, o), "A;B");
}

TEST(ChatTemplate, StrftimeMatchesPython)
{
    // Values from Python's datetime(...).strftime
    EXPECT_EQ(dpo::pyStrftime("%d %b %Y", "2024-07-26T12:00:00"), "26 Jul 2024");
    EXPECT_EQ(dpo::pyStrftime("%d %B %Y", "2024-07-26T12:00:00"), "26 July 2024");
    EXPECT_EQ(dpo::pyStrftime("%B %d, %Y", "2024-07-26T12:00:00"), "July 26, 2024");
    EXPECT_EQ(dpo::pyStrftime("%A %a %j %U %W %V %G %u %w", "2024-07-26T12:00:00"), "Friday Fri 208 29 30 30 2024 5 5");
    EXPECT_EQ(dpo::pyStrftime("%V %G", "2021-01-01T00:00:00"), "53 2020");
    EXPECT_EQ(dpo::pyStrftime("%V %G", "2024-12-30T00:00:00"), "01 2025");
    EXPECT_EQ(dpo::pyStrftime("%I:%M %p|%-d|%-m|%H", "2024-01-05T00:07:09"), "12:07 AM|5|1|00");
    EXPECT_EQ(dpo::pyStrftime("%c|%x|%X|%%|%Z|%z", "2024-07-06T13:04:05"), "Sat Jul  6 13:04:05 2024|07/06/24|13:04:05|%||");
    EXPECT_THROW(dpo::pyStrftime("%Y", "not a date"), dpo::Error);
}

TEST(ChatTemplate, LoadsTemplatesFromModelFolders)
{
    const fs::path root = fs::temp_directory_path() / ("dpo_chat_tpl_" + std::to_string(::getpid()));
    fs::remove_all(root);
    auto write = [](const fs::path &p, const std::string &text) {
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << text;
    };
    // string in tokenizer_config.json, special tokens as strings and AddedToken dicts
    write(root / "a/tokenizer_config.json",
          R"({"chat_template":"{{ bos_token }}{{ messages[0].content }}{{ eos_token }}","bos_token":"<s>",)"
          R"("eos_token":{"content":"</s>","lstrip":false},"unk_token":null,"additional_special_tokens":["<x>"]})");
    auto a = dpo::loadModelChatTemplate((root / "a").string());
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->specialTokens["bos_token"], "<s>");
    EXPECT_EQ(a->specialTokens["eos_token"], "</s>");
    EXPECT_FALSE(a->specialTokens.contains("unk_token"));
    dpo::ChatRequest req;
    req.messages = ojson::parse(R"([{"role":"user","content":"hi"}])");
    req.specialTokens = a->specialTokens;
    EXPECT_EQ(a->chatTemplate.apply(req), "<s>hi</s>");
    // list of named templates: default, or tool_use when tools are given
    write(root / "b/tokenizer_config.json",
          R"({"chat_template":[{"name":"default","template":"D"},{"name":"tool_use","template":"T"}]})");
    EXPECT_EQ(dpo::loadModelChatTemplate((root / "b").string())->chatTemplate.renderContext(ojson::object()), "D");
    EXPECT_EQ(dpo::loadModelChatTemplate((root / "b").string(), "", true)->chatTemplate.renderContext(ojson::object()), "T");
    EXPECT_THROW(dpo::loadModelChatTemplate((root / "b").string(), "nope"), dpo::Error);
    // chat_template.jinja wins over tokenizer_config.json; chat_template.json is read too
    write(root / "c/tokenizer_config.json", R"({"chat_template":"old"})");
    write(root / "c/chat_template.jinja", "new\n");
    EXPECT_EQ(dpo::loadModelChatTemplate((root / "c").string())->chatTemplate.renderContext(ojson::object()), "new");
    write(root / "d/chat_template.json", R"({"chat_template":"from json"})");
    EXPECT_EQ(dpo::loadModelChatTemplate((root / "d").string())->chatTemplate.renderContext(ojson::object()), "from json");
    // no template
    write(root / "e/tokenizer_config.json", R"({"bos_token":"<s>"})");
    EXPECT_FALSE(dpo::loadModelChatTemplate((root / "e").string()).has_value());
    // a template that does not parse names its file
    write(root / "f/chat_template.jinja", "{% if %}");
    try {
        dpo::loadModelChatTemplate((root / "f").string());
        ADD_FAILURE() << "no error";
    } catch (const dpo::Error &e) {
        EXPECT_NE(std::string(e.what()).find("chat_template.jinja"), std::string::npos) << e.what();
    }
    fs::remove_all(root);
}

TEST(ChatTemplate, CliRendersCasesAndContexts)
{
    const std::string cli = dpotest::cliPath();
    const fs::path tmp = fs::temp_directory_path() / ("dpo_chat_cli_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    const std::string name = "qwen3.5-4b";
    const std::string tplPath = kDir + "/" + name + "/template.jinja";
    const auto cases = readCases(kDir + "/" + name + "/cases.jsonl");
    {
        std::ofstream in(tmp / "in.jsonl", std::ios::binary);
        for (const ojson &c : cases) {
            ojson line = { { "id", c["id"] }, { "context", c["context"] } };
            if (c.contains("options"))
                line["options"] = c["options"];
            in << line.dump() << "\n";
        }
    }
    const auto r = dpotest::runCommand(cli + " chat render --template '" + tplPath + "' --cases '" + (tmp / "in.jsonl").string() + "'");
    ASSERT_EQ(r.exitCode, 0) << r.err;
    std::vector<ojson> outs;
    std::istringstream ss(r.out);
    std::string line;
    while (std::getline(ss, line))
        if (!line.empty())
            outs.push_back(ojson::parse(line));
    ASSERT_EQ(outs.size(), cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
        EXPECT_EQ(outs[i]["id"], cases[i]["id"]);
        if (cases[i].contains("error"))
            EXPECT_TRUE(outs[i].contains("error")) << cases[i]["id"];
        else
            EXPECT_EQ(outs[i].value("output", std::string("<missing>")), cases[i]["expected"].get<std::string>())
                << cases[i]["id"];
    }
    // one context: exact bytes, no newline added
    const ojson &c0 = cases[0];
    std::ofstream(tmp / "ctx.json", std::ios::binary) << c0["context"].dump();
    const auto one = dpotest::runCommand(cli + " chat render --template '" + tplPath + "' --context '" + (tmp / "ctx.json").string() + "'");
    ASSERT_EQ(one.exitCode, 0) << one.err;
    EXPECT_EQ(one.out, c0["expected"].get<std::string>());
    // an error case: non-zero exit and a message
    for (const ojson &c : cases) {
        if (!c.contains("error"))
            continue;
        std::ofstream(tmp / "bad.json", std::ios::binary) << c["context"].dump();
        const auto bad = dpotest::runCommand(cli + " chat render --template '" + tplPath + "' --context '" + (tmp / "bad.json").string() + "'");
        EXPECT_NE(bad.exitCode, 0);
        EXPECT_FALSE(bad.err.empty());
        break;
    }
    // --model with --messages
    fs::create_directories(tmp / "model");
    std::ofstream(tmp / "model/tokenizer_config.json")
        << R"({"chat_template":"{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}>{% endif %}{% if tools %}T{% endif %}","bos_token":"<s>"})";
    std::ofstream(tmp / "msgs.json") << R"([{"role":"user","content":"hey"}])";
    std::ofstream(tmp / "tools.json") << R"([{"type":"function","function":{"name":"f"}}])";
    const auto m = dpotest::runCommand(cli + " chat render --model '" + (tmp / "model").string() + "' --messages '" +
                                       (tmp / "msgs.json").string() + "' --add-generation-prompt --tools '" +
                                       (tmp / "tools.json").string() + "'");
    ASSERT_EQ(m.exitCode, 0) << m.err;
    EXPECT_EQ(m.out, "<s>hey>T");
    fs::remove_all(tmp);
}

} // namespace test_chat_template
