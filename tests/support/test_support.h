// Helpers shared by the test suites: where the sources, shared data and the built binary are,
// temporary directories, and running the mathrl binary as a subprocess.
#pragma once
#include <string>
#include <vector>

namespace mathrl::test {

std::string source_dir();   // the repository root
std::string shared_dir();   // ../shared beside the clone (GSM8K, MATH, tokenizers)
std::string fixture(const std::string& relative);  // tests/fixtures/<relative>
std::string mathrl_binary();  // build/mathrl

// A fresh directory under $TMPDIR, removed with its contents when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // -signal when killed by a signal
  std::string out;
  std::string err;
};
// Runs build/mathrl with args, feeding `input` on stdin. Environment is inherited.
ProcessResult run_mathrl(const std::vector<std::string>& args, const std::string& input = "");

// A loopback TCP port nobody listens on now, for a multi-rank test's rendezvous (tests run in
// parallel, so none may use the default 29500).
std::string free_port();

}  // namespace mathrl::test
