#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <lua.hpp>

#include "common/error.h"
#include "data/data_section.h"
#include "data/mixed_stream.h"
#include "data/shard.h"
#include "data/shard_source.h"
#include "lua_host.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

using namespace mathrl;

namespace {

const Tokenizer& llama2() {
  static auto tok = load_tokenizer(test::shared_dir() + "/tokenizers/llama2/tokenizer.model");
  return *tok;
}

const char* kQa =
    "{\"question\": \"What is 2+3?\", \"answer\": \"2+3 = 5\", \"meta\": {\"tags\": [\"add\", \"easy\"], \"n\": 3}}\n"
    "{\"question\": \"Half of 10?\", \"answer\": \"10/2 = 5\", \"meta\": {\"tags\": [\"div\", \"easy\"], \"n\": 4}}\n"
    "{\"question\": \"Skip me\", \"skip\": true, \"meta\": {\"tags\": [], \"n\": 0}}\n";

// Runs `code` as a chunk named data_recipe.lua (with DIR set) and leaves its result on the stack.
lua::StatePtr run_chunk(const std::string& code, const std::string& dir) {
  lua::StatePtr L(luaL_newstate());
  luaL_openlibs(L.get());
  lua_pushstring(L.get(), dir.c_str());
  lua_setglobal(L.get(), "DIR");
  if (luaL_loadbuffer(L.get(), code.data(), code.size(), "@data_recipe.lua") != LUA_OK)
    throw RecipeError(lua_tostring(L.get(), -1));
  lua::protected_call(L.get(), 0, 1, "recipe");
  return L;
}

std::unique_ptr<data::DocumentStream> build(lua_State* L, std::vector<std::string>* warnings = nullptr) {
  return lua::make_document_stream(L, -1, llama2(), 3, "data_recipe.lua: ", [warnings](const std::string& m) {
    if (warnings) warnings->push_back(m);
  });
}

std::vector<int32_t> concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(DataSection, BuildsJsonlTemplateShardAndTextSourcesFromARecipe) {
  test::TempDir dir;
  std::ofstream(dir.file("qa.jsonl")) << kQa;
  std::ofstream(dir.file("t.txt")) << "one line of text\n\nanother line\n";
  data::write_token_shard(dir.file("s.bin"), {100, 101, 102, 2, 200, 201, 2}, data::ShardDtype::U16, 2);
  auto L = run_chunk(R"(
    return {
      sources = {
        { name = "qa", path = DIR .. "/qa.jsonl", weight = 0.4,
          text = function(ex) return ex.question and ex.answer and (ex.question .. "\n" .. ex.answer) end },
        { name = "sft", path = DIR .. "/qa.jsonl", format = "jsonl", weight = 0.3, epochs = 2,
          template = function(ex)
            if ex.skip then return nil end
            return { prompt = ex.question .. "\nPlease reason step by step.", response = ex.answer }
          end },
        { name = "nested", path = DIR .. "/qa.jsonl", weight = 0.1,
          text = function(ex) return ex.meta.tags[2] and (ex.meta.tags[1] .. "/" .. ex.meta.tags[2] .. "/" .. math.type(ex.meta.n) .. ex.meta.n) end },
        { name = "shard", path = DIR .. "/s.bin", weight = 0.1, max_tokens = 4 },
        { name = "txt", path = DIR .. "/t.txt", format = "text", per_line = true, weight = 0.1 },
      },
    })",
                     dir.path());
  std::vector<std::string> warnings;
  auto stream = build(L.get(), &warnings);
  EXPECT_EQ(stream->source_names(), (std::vector<std::string>{"qa", "sft", "nested", "shard", "txt"}));
  const Tokenizer& tok = llama2();
  const std::vector<int32_t> bos = {tok.bos_id()};
  ASSERT_EQ(tok.bos_id(), 1);
  std::set<std::vector<int32_t>> qa = {concat(bos, tok.encode("What is 2+3?\n2+3 = 5")),
                                       concat(bos, tok.encode("Half of 10?\n10/2 = 5"))};
  std::set<std::vector<int32_t>> nested = {concat(bos, tok.encode("add/easy/integer3")),
                                           concat(bos, tok.encode("div/easy/integer4"))};
  std::set<std::vector<int32_t>> txt = {concat(bos, tok.encode("one line of text")), concat(bos, tok.encode("another line"))};
  std::map<size_t, int> count;
  uint64_t shard_tokens = 0;
  data::Document d;
  while (stream->next(d)) {
    ++count[d.source];
    switch (d.source) {
      case 0: EXPECT_TRUE(qa.count(d.tokens)); EXPECT_TRUE(d.loss_mask.empty()); break;
      case 1: {
        const bool first = d.tokens.size() > 8 && d.tokens == concat(concat(bos, tok.encode("What is 2+3?\nPlease reason step by step.")), tok.encode("2+3 = 5"));
        const std::string q = first ? "What is 2+3?" : "Half of 10?";
        const auto prompt = concat(bos, tok.encode(q + "\nPlease reason step by step."));
        const auto response = tok.encode(first ? "2+3 = 5" : "10/2 = 5");
        ASSERT_EQ(d.tokens, concat(prompt, response));
        ASSERT_EQ(d.loss_mask.size(), d.tokens.size());
        for (size_t i = 0; i < d.tokens.size(); ++i) EXPECT_EQ(d.loss_mask[i], i < prompt.size() ? 0 : 1);
        break;
      }
      case 2: EXPECT_TRUE(nested.count(d.tokens)); break;
      case 3: shard_tokens += d.tokens.size(); EXPECT_LT(d.tokens[0], 300); break;
      case 4: EXPECT_TRUE(txt.count(d.tokens)); break;
    }
  }
  EXPECT_EQ(count[0], 2);  // the record without an answer is skipped (nil)
  EXPECT_EQ(count[1], 4);  // two epochs of the two usable records
  EXPECT_EQ(count[2], 2);
  EXPECT_EQ(shard_tokens, 4u);  // max_tokens cuts the second document
  EXPECT_EQ(count[4], 2);
  auto* mixed = dynamic_cast<data::MixedStream*>(stream.get());
  ASSERT_NE(mixed, nullptr);
  EXPECT_EQ(mixed->skipped(0), 1u);
  EXPECT_EQ(mixed->skipped(1), 1u);
  EXPECT_NE(stream->report().find("qa="), std::string::npos);
  EXPECT_EQ(lua_gettop(L.get()), 1);  // the builder leaves the stack as it found it
}

TEST(DataSection, MappingFunctionErrorNamesRecipeAndDataLines) {
  test::TempDir dir;
  std::ofstream(dir.file("qa.jsonl")) << kQa;
  const std::string recipe = R"(
    return {
      strict = STRICT,
      sources = {
        { name = "qa", path = DIR .. "/qa.jsonl", shuffle = false,
          text = function(ex)
            return ex.question .. ex.answer
          end },
      },
    })";
  {
    auto L = run_chunk("STRICT = true\n" + recipe, dir.path());
    auto stream = build(L.get());
    data::Document d;
    ASSERT_TRUE(stream->next(d));
    ASSERT_TRUE(stream->next(d));
    const std::string msg = error_of([&] { stream->next(d); });
    EXPECT_NE(msg.find("qa.jsonl:3: "), std::string::npos) << msg;
    EXPECT_NE(msg.find("data_recipe.lua:8: attempt to concatenate"), std::string::npos) << msg;
  }
  {
    auto L = run_chunk("STRICT = false\n" + recipe, dir.path());
    std::vector<std::string> warnings;
    auto stream = build(L.get(), &warnings);
    data::Document d;
    int n = 0;
    while (stream->next(d)) ++n;
    EXPECT_EQ(n, 2);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("qa.jsonl:3: data source 'qa' text function: data_recipe.lua:8: attempt to concatenate"),
              std::string::npos)
        << warnings[0];
    EXPECT_EQ(warnings[0].find("traceback"), std::string::npos) << warnings[0];
  }
  {  // a function that fails on every record is an error, not an empty source
    auto L = run_chunk("return { sources = { { name = 'qa', path = DIR .. '/qa.jsonl', text = function(ex) error('boom') end } } }",
                       dir.path());
    auto stream = build(L.get());
    data::Document d;
    const std::string msg = error_of([&] { stream->next(d); });
    EXPECT_NE(msg.find("every one of the 3 records read was malformed"), std::string::npos) << msg;
    EXPECT_NE(msg.find("data_recipe.lua:1: boom"), std::string::npos) << msg;
  }
}

TEST(DataSection, WeightFunctionOfTheStepChangesTheMix) {
  test::TempDir dir;
  std::vector<int32_t> a, b;
  for (int i = 0; i < 400; ++i) {
    for (int k = 0; k < 10; ++k) a.push_back(100 + k), b.push_back(200 + k);
    a.push_back(2);
    b.push_back(2);
  }
  data::write_token_shard(dir.file("a.bin"), a, data::ShardDtype::U16, 2);
  data::write_token_shard(dir.file("b.bin"), b, data::ShardDtype::U16, 2);
  auto L = run_chunk(R"(
    return { sources = {
      { name = "a", path = DIR .. "/a.bin", weight = function(step) return step < 10 and 1 or 0 end },
      { name = "b", path = DIR .. "/b.bin", weight = function(step) return step < 10 and 1 or 3 end },
      { name = "c", path = DIR .. "/b.bin", weight = function(step) if step > 50 then return "x" end return 1 end },
    } })",
                     dir.path());
  auto stream = build(L.get());
  data::Document d;
  std::map<size_t, int> before, after;
  stream->set_step(0);
  for (int i = 0; i < 90; ++i) {
    ASSERT_TRUE(stream->next(d));
    ++before[d.source];
  }
  EXPECT_EQ(before[0], 30);
  EXPECT_EQ(before[1], 30);
  stream->set_step(10);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(stream->next(d));
    ++after[d.source];
  }
  EXPECT_EQ(after[0], 0);
  EXPECT_GT(after[1], 60);
  const std::string msg = error_of([&] { stream->set_step(51); });
  EXPECT_NE(msg.find("weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected a number"), std::string::npos) << msg;
}

TEST(DataSection, BadSourceEntriesAreRecipeErrors) {
  test::TempDir dir;
  std::ofstream(dir.file("qa.jsonl")) << kQa;
  data::write_token_shard(dir.file("s.bin"), {100, 2}, data::ShardDtype::U16, 2);
  auto error_for = [&](const std::string& sources) {
    auto L = run_chunk("return { sources = { " + sources + " } }", dir.path());
    return error_of([&] { build(L.get()); });
  };
  std::string e = error_for("{ name = 'a', path = DIR .. '/qa.jsonl', wieght = 1 }");
  EXPECT_NE(e.find("data_recipe.lua: unknown field 'data.sources[1].wieght'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'data.sources[1].weight'"), std::string::npos) << e;
  e = error_for("{ name = 'a', path = DIR .. '/qa.jsonl', weight = -0.5 }");
  EXPECT_NE(e.find("'data.sources[1].weight' must be a finite number >= 0, got -0.5"), std::string::npos) << e;
  e = error_for("{ name = 'a', path = DIR .. '/qa.jsonl', weight = 0 }, { name = 'b', path = DIR .. '/qa.jsonl', weight = 0 }");
  EXPECT_NE(e.find("weights sum to 0"), std::string::npos) << e;
  e = error_for("{ name = 's', path = DIR .. '/s.bin', text = function(ex) return '' end }");
  EXPECT_NE(e.find("'data.sources[1].text' applies to jsonl sources"), std::string::npos) << e;
  e = error_for("{ name = 's', path = DIR .. '/s.bin', dtype = 'uint32' }");
  EXPECT_NE(e.find("s.bin: token shard dtype is uint16, expected uint32"), std::string::npos) << e;
  e = error_for("{ name = 'a', path = DIR .. '/qa.jsonl', format = 'csv' }");
  EXPECT_NE(e.find("expected one of"), std::string::npos) << e;
  e = error_for("{ path = DIR .. '/qa.jsonl' }");
  EXPECT_NE(e.find("missing required field 'data.sources[1].name'"), std::string::npos) << e;
  auto L = run_chunk("return { sources = { { name = 'a', path = DIR .. '/qa.jsonl', weight = -1 } } }", dir.path());
  EXPECT_THROW(build(L.get()), UsageError);  // RecipeError is a UsageError: exit status 2
  // A second section with this schema names itself in messages.
  auto E = run_chunk("return { sources = { { name = 'a', path = DIR .. '/qa.jsonl', wieght = 1 } } }", dir.path());
  e = error_of([&] { lua::make_document_stream(E.get(), -1, llama2(), 3, "r.lua: ", {}, "eval_data."); });
  EXPECT_NE(e.find("unknown field 'eval_data.sources[1].wieght'"), std::string::npos) << e;
}

TEST(DataSection, BosCanBeTurnedOffAndFieldReadsAPlainJsonlField) {
  test::TempDir dir;
  std::ofstream(dir.file("t.jsonl")) << "{\"body\": \"Just text.\"}\n{\"text\": \"no body\"}\n";
  auto L = run_chunk("return { bos = false, strict = true, sources = { { name = 't', path = DIR .. '/t.jsonl', field = 'body', shuffle = false } } }",
                     dir.path());
  auto stream = build(L.get());
  data::Document d;
  ASSERT_TRUE(stream->next(d));
  EXPECT_EQ(d.tokens, llama2().encode("Just text."));
  const std::string msg = error_of([&] { stream->next(d); });  // strict: the line without 'body' is fatal
  EXPECT_NE(msg.find("t.jsonl:2: missing field"), std::string::npos) << msg;
}

TEST(TokenizeShard, RoundTripThroughTheCli) {
  test::TempDir dir;
  const std::vector<std::string> texts = {"The answer is 42.", "Natalia sold 48/2 = 24 clips in May.", "∑ x² ≠ y"};
  std::string input;
  for (const auto& t : texts) input += "{\"text\": \"" + t + "\"}\n";
  std::ofstream(dir.file("in.jsonl")) << input;
  const std::string llama = test::shared_dir() + "/tokenizers/llama2/tokenizer.model";
  auto r = test::run_mathrl({"tokenize", "--tokenizer", llama, "--shard", dir.file("out.bin"), dir.file("in.jsonl")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("wrote 3 documents"), std::string::npos) << r.err;
  const Tokenizer& tok = llama2();
  {
    data::TokenShard shard(dir.file("out.bin"));
    EXPECT_EQ(shard.dtype(), data::ShardDtype::U16);  // 32000 ids fit uint16
    EXPECT_EQ(shard.separator(), tok.eos_id());
  }
  data::ShardSource src(dir.file("out.bin"), 2, tok.vocab_size());
  ASSERT_EQ(src.size(), texts.size());
  data::Document d;
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(src.read(i, d), "");
    EXPECT_EQ(d.tokens, tok.encode(texts[i])) << i;
  }
  // --add-special puts the post-processor's BOS in every document.
  r = test::run_mathrl({"tokenize", "--tokenizer", llama, "--add-special", "--shard", dir.file("bos.bin")}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  data::ShardSource with_bos(dir.file("bos.bin"), 2, tok.vocab_size());
  ASSERT_EQ(with_bos.read(1, d), "");
  EXPECT_EQ(d.tokens, tok.encode(texts[1], true));
  // A vocabulary past 65536 ids gets uint32.
  r = test::run_mathrl({"tokenize", "--tokenizer", test::shared_dir() + "/tokenizers/qwen3", "--shard", dir.file("q.bin")},
                       input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(data::TokenShard(dir.file("q.bin")).dtype(), data::ShardDtype::U32);
  // Bad input stops with the line and leaves no shard behind.
  r = test::run_mathrl({"tokenize", "--tokenizer", llama, "--shard", dir.file("bad.bin")}, input + "{\"text\": \"\xff\"}\n");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(":4: text is not valid UTF-8"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.bin")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.bin.tmp")));
  r = test::run_mathrl({"tokenize", "--tokenizer", llama, "--decode", "--shard", dir.file("x.bin")}, "");
  EXPECT_EQ(r.exit_code, 2) << r.err;
}
