// The safetensors header parser on files that lie.
#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "model/safetensors.h"

using namespace mathrl;
using namespace mathrl::model;

namespace {

std::string file_with_header(const std::string& json, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out + json + std::string(data_bytes, '\x01');
}

std::string parse_error(const std::string& bytes, uint64_t file_size = 0) {
  try {
    parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                             file_size ? file_size : bytes.size(), "f.safetensors");
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, ParsesAValidHeader) {
  std::string f = file_with_header(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[16,24]},"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
      24);
  auto h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(f.data()), f.size(), f.size(), "f");
  ASSERT_EQ(h.tensors.size(), 2u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

TEST(Safetensors, RejectsFilesThatLie) {
  EXPECT_NE(parse_error("abc").find("truncated"), std::string::npos);
  std::string f = file_with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16);
  EXPECT_NE(parse_error(f.substr(0, 20), 20).find("runs past the end"), std::string::npos);
  EXPECT_NE(parse_error(f.substr(0, f.size() - 4)).find("fall outside"), std::string::npos);
  EXPECT_NE(parse_error(file_with_header("not json", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(parse_error(file_with_header(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4)).find("unknown dtype 'F33'"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16)).find("tensor 'a': 16 bytes"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with_header(
                            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                            16))
                .find("overlap"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with_header(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)).find("non-negative"),
            std::string::npos);
  EXPECT_NE(parse_error(file_with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8)).find("outside"),
            std::string::npos);
  // A header length of 2^63 must not overflow anything.
  std::string huge(8, '\xff');
  huge[7] = '\x7f';
  EXPECT_NE(parse_error(huge + "{}").find("runs past the end"), std::string::npos);
}
