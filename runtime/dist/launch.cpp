#include "dist/launch.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <fstream>
#include <csignal>
#include <ctime>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cli/options.h"
#include "common/error.h"

namespace mathrl::cli {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_interrupt(int sig) { g_interrupted = sig; }

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find this executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return str("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return str("was killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return "stopped";
}

}  // namespace

int run_launch(const Args& args) {
  const long long nproc = args.integer("nproc-per-node"), nnodes = args.integer("nnodes"),
                  node_rank = args.integer("node-rank"), port = args.integer("master-port");
  if (nproc < 1 || nproc > 1024) throw UsageError("--nproc-per-node must be between 1 and 1024");
  if (nnodes < 1 || node_rank < 0 || node_rank >= nnodes) throw UsageError("--node-rank must be in [0, --nnodes)");
  if (port < 1 || port > 65535) throw UsageError("--master-port must be a TCP port");
  const std::vector<std::string>& command = args.positional();
  if (command.empty()) throw UsageError("mathrl launch: nothing to run (usage: mathrl launch [options] -- run R.lua)");
  const std::string exe = self_exe();
  const long long world = nproc * nnodes;
  const double grace_s = args.real("grace");

  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  // One time stamp for every rank's run directory.
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  // Each rank records its fatal error here (see record_fatal_error in cli/commands.cpp).
  char error_dir[] = "/tmp/mathrl-launch-XXXXXX";
  if (!::mkdtemp(error_dir)) throw Error(str("cannot create a temporary directory: ", std::strerror(errno)));
  auto error_file = [&](long long rank) { return str(error_dir, "/rank", rank, ".err"); };
  std::vector<pid_t> pids;
  for (long long local = 0; local < nproc; ++local) {
    long long rank = node_rank * nproc + local;
    pid_t pid = ::fork();
    if (pid < 0) throw Error(str("fork failed: ", std::strerror(errno)));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(local).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(node_rank).c_str(), 1);
      ::setenv("MASTER_ADDR", args.str("master-addr").c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::setenv("MATHRL_RUN_STAMP", stamp, 0);
      ::setenv("MATHRL_ERROR_FILE", error_file(rank).c_str(), 1);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(exe.c_str()));
      for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      std::fprintf(stderr, "mathrl launch: exec failed: %s\n", std::strerror(errno));
      ::_exit(127);
    }
    pids.push_back(pid);
  }

  // Supervise: the first failure (or an interrupt) stops every other rank.
  int first_failed_rank = -1, first_status = 0, remaining = static_cast<int>(pids.size());
  bool stopping = false;
  auto stop_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (remaining > 0) {
    int status = 0;
    pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (pids[i] != done) continue;
        pids[i] = -1;
        --remaining;
        bool failed = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        int rank = static_cast<int>(node_rank * nproc + static_cast<long long>(i));
        // Ranks that fail together (one dies, its peers' collectives break) are all reported:
        // which of them the kernel lets us reap first is a race.
        bool killed_by_us = stopping && WIFSIGNALED(status);
        if (failed && !killed_by_us) std::fprintf(stderr, "mathrl launch: rank %d %s\n", rank, describe_status(status).c_str());
        if (failed && first_failed_rank < 0 && !stopping) {
          first_failed_rank = rank;
          first_status = status;
          std::fprintf(stderr, "mathrl launch: stopping the other ranks\n");
          stopping = true;
          stop_all(SIGTERM);
          deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long long>(grace_s * 1000));
        }
      }
      continue;
    }
    if (g_interrupted && !stopping) {
      std::fprintf(stderr, "mathrl launch: interrupted; forwarding to every rank\n");
      stopping = true;
      stop_all(g_interrupted == SIGINT ? SIGINT : SIGTERM);
      deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long long>(grace_s * 1000));
    }
    if (stopping && std::chrono::steady_clock::now() > deadline) {
      stop_all(SIGKILL);
      deadline = std::chrono::steady_clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The root cause is the earliest recorded error; peers usually fail after it, in their collectives.
  long long earliest = LLONG_MAX;
  int root_rank = -1;
  std::string root_message;
  for (long long local = 0; local < nproc; ++local) {
    long long rank = node_rank * nproc + local;
    std::ifstream in(error_file(rank));
    long long when = 0;
    std::string first_line;
    if (in >> when && std::getline(in >> std::ws, first_line) && when < earliest) {
      earliest = when;
      root_rank = static_cast<int>(rank);
      root_message = first_line;
    }
    std::remove(error_file(rank).c_str());
  }
  ::rmdir(error_dir);
  if (first_failed_rank >= 0) {
    if (root_rank >= 0)
      std::fprintf(stderr, "mathrl launch: job failed: rank %d failed first: %s\n", root_rank, root_message.c_str());
    else
      std::fprintf(stderr, "mathrl launch: job failed: rank %d %s\n", first_failed_rank, describe_status(first_status).c_str());
    return WIFEXITED(first_status) ? WEXITSTATUS(first_status) : 128 + WTERMSIG(first_status);
  }
  return g_interrupted ? 130 : 0;
}

}  // namespace mathrl::cli
