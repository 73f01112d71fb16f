#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "base/unique_fd.h"

extern char** environ;

namespace mconnect {
namespace {

Result<std::pair<UniqueFd, UniqueFd>> Pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Fail("pipe: {}", std::strerror(errno));
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace

std::vector<std::string> ShellCommand(std::string script, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(script), "sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string ShellQuote(std::string_view word) {
  bool plain = !word.empty();
  for (char c : word) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                std::strchr("@%_+=:,./-", c) != nullptr;
    if (!safe) plain = false;
  }
  if (plain) return std::string(word);
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

Result<CommandOutput> RunCommand(const std::vector<std::string>& argv, const CommandOptions& options) {
  if (argv.empty()) return Fail("empty command");
  auto in = Pipe();
  auto out = Pipe();
  auto err = Pipe();
  if (!in || !out || !err) return Fail("cannot create pipes for {}", argv[0]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in->first.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out->second.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err->second.get(), 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attributes, 0);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attributes, &empty);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) return Fail("cannot run {}: {}", argv[0], std::strerror(rc));
  in->first.Reset();
  out->second.Reset();
  err->second.Reset();

  CommandOutput result;
  UniqueFd to_child = std::move(in->second);
  if (options.input.empty()) to_child.Reset();
  SetNonBlocking(out->first.get());
  SetNonBlocking(err->first.get());
  if (to_child) SetNonBlocking(to_child.get());
  std::size_t written = 0;
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  UniqueFd* readers[2] = {&out->first, &err->first};
  std::string* sinks[2] = {&result.out, &result.err};
  while (readers[0]->valid() || readers[1]->valid()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3] = {{readers[0]->get(), POLLIN, 0}, {readers[1]->get(), POLLIN, 0}, {to_child.get(), POLLOUT, 0}};
    if (::poll(fds, 3, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      char buffer[16384];
      ssize_t n = ::read(readers[i]->get(), buffer, sizeof buffer);
      if (n > 0) {
        std::size_t room = options.max_output - std::min(options.max_output, sinks[i]->size());
        sinks[i]->append(buffer, std::min<std::size_t>(room, static_cast<std::size_t>(n)));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        readers[i]->Reset();
      }
    }
    if (to_child && fds[2].revents != 0) {
      ssize_t n = ::write(to_child.get(), options.input.data() + written, options.input.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == options.input.size()) to_child.Reset();
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

std::optional<char> ProcessState(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  std::size_t name_end = line.rfind(") ");  // the command name may hold spaces and parentheses
  if (name_end == std::string::npos || name_end + 2 >= line.size()) return std::nullopt;
  return line[name_end + 2];
}

}  // namespace mconnect
