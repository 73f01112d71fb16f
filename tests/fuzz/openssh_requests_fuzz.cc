// An `ssh -S` client's byte stream, fed to a real OpenSshMuxServer over a socketpair, with the
// fds a real client lends after NEW_SESSION / NEW_STDIO_FWD passed by SCM_RIGHTS (one per
// message as OpenSSH's mm_send_fd does, or all in one, or one too many). The channel side is a
// stub: each task the server starts is aborted at once, a turn later, at the end, or played as a
// session that opens, prints, and exits. Beyond "no crash":
//   * what SessionFromRequest / InvalidStdioForward / InvalidForward accept of each decoded
//     frame is inside their bounds, and the forwards the server hands to its hooks are those
//     InvalidForward accepts;
//   * a refused client never gets a channel or a forward;
//   * everything the server writes back is a well-formed frame that DecodeServerMessage takes,
//     HELLO first;
//   * once the server and the harness's ends are gone, no fd is left open and every lent open
//     file description has been given back.
//
// Input: three header bytes, then `stdin_bytes` bytes typed into each lent stdin, then the
// client's frames after its HELLO.
//   byte 0  bits 0-1  tasks: 0 abort at once, 1 abort a turn later, 2 play a session, 3 hold to the end
//           bits 2-3  lent fds: 0 /dev/null, 1 pipes, 2 one terminal for all three, 3 O_PATH
//           bit 4     all of a request's fds in one message     bit 6  the client is refused
//           bit 5     one fd more than the request takes        bit 7  half-close at the end
//   byte 1  bit 0     no HELLO from the harness: the input's first 4 bytes are its length
//           bit 1     forwards answered a turn later            bit 2  forwards fail
//           bit 3     SIGWINCH each turn (the terminal's size changes)
//           bit 4     a played session's pty request failed     bit 5  it was killed by a signal
//           bits 6-7  its exit status: 0, 1, 127, 255
//   byte 2  stdin_bytes
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/poller.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "mux/openssh/codec.h"
#include "mux/openssh/lent_fd.h"
#include "mux/openssh/requests.h"
#include "mux/openssh/server.h"
#include "mux/ssh/channel_pump.h"
#include "mux/ssh/channel_task.h"
#include "tests/fuzz/harness.h"

namespace {

using namespace mconnect;
namespace ossh = mux::openssh;

constexpr int kMaxTurns = 4096;
constexpr std::size_t kMaxTerm = 64;

enum class TaskMode { kAbortNow, kAbortNextTurn, kPlaySession, kHoldToEnd };
enum class LentKind { kDevNull, kPipes, kTerminal, kPath };

struct Options {
  TaskMode tasks = TaskMode::kAbortNow;
  LentKind lent = LentKind::kDevNull;
  bool one_message = false;
  bool extra_fd = false;
  bool refused = false;
  bool half_close = false;
  bool raw_hello = false;
  bool defer_forwards = false;
  bool fail_forwards = false;
  bool window_changes = false;
  bool tty_failed = false;
  bool signalled = false;
  int exit_status = 0;
  std::string_view typed;  // into each lent stdin
};

// The pipes a channel pump shares with the server: the stub channel side plays the task's part
// through them. ChannelPump keeps them protected; a pointer to member named through a derived
// class reads them without changing the production class for a test.
struct PipesOf : mux::ChannelPump {
  static std::shared_ptr<mux::ChannelPipes> Get(mux::ChannelTask& task) {
    auto* pump = dynamic_cast<mux::ChannelPump*>(&task);
    FUZZ_CHECK(pump != nullptr);
    return pump->*(&PipesOf::pipes_);
  }
};

// The validators on every decoded client frame, whatever the server then makes of it.
void CheckValidators(const ossh::Frame& frame) {
  auto message = ossh::DecodeClientMessage(frame);
  if (!message) return;
  if (const auto* session = std::get_if<ossh::NewSession>(&*message)) {
    auto accepted = mux::SessionFromRequest(*session);
    FUZZ_CHECK(accepted.has_value() == (session->command.size() <= mux::kMaxRequestBytes));
    if (!accepted) return;
    FUZZ_CHECK(accepted->command == session->command && accepted->command.size() <= mux::kMaxRequestBytes);
    FUZZ_CHECK(accepted->term.size() <= kMaxTerm && accepted->term == session->term.substr(0, kMaxTerm));
    FUZZ_CHECK(accepted->env.size() <= mux::kMaxSessionEnv && accepted->env.size() <= session->env.size());
    // Exactly the client's valid entries, in its order, up to the cap.
    std::vector<std::string> valid;
    for (const auto& entry : session->env) {
      if (valid.size() < mux::kMaxSessionEnv && mux::SessionEnvEntryValid(entry)) valid.push_back(entry);
    }
    FUZZ_CHECK(accepted->env == valid);
    for (const auto& entry : accepted->env) {
      std::size_t equals = entry.find('=');
      FUZZ_CHECK(entry.size() <= mux::kMaxRequestBytes && equals != std::string::npos && equals >= 1 &&
                 equals <= mux::kMaxEnvNameBytes);
    }
    FUZZ_CHECK(accepted->want_tty == session->want_tty && accepted->subsystem == session->subsystem);
  } else if (const auto* stdio = std::get_if<ossh::NewStdioForward>(&*message)) {
    if (mux::InvalidStdioForward(*stdio)) return;
    FUZZ_CHECK(stdio->port >= 1 && stdio->port <= 65535);
    FUZZ_CHECK(!stdio->host.empty() && stdio->host.size() <= mux::kMaxHostBytes);
  } else if (const auto* open = std::get_if<ossh::OpenForward>(&*message)) {
    if (!mux::InvalidForward(open->forward)) FUZZ_CHECK(!ossh::InvalidForwardReason(open->forward));
  } else if (const auto* close = std::get_if<ossh::CloseForward>(&*message)) {
    if (!mux::InvalidForward(close->forward)) FUZZ_CHECK(!ossh::InvalidForwardReason(close->forward));
  }
}

// What the server may be handed as a forward: only what InvalidForward lets through.
void CheckForward(const ossh::ForwardSpec& spec) {
  FUZZ_CHECK(!mux::InvalidForward(spec));
  FUZZ_CHECK(spec.type >= ossh::kMuxFwdLocal && spec.type <= ossh::kMuxFwdDynamic);
  FUZZ_CHECK(spec.listen_host.size() <= mux::kMaxHostBytes && spec.connect_host.size() <= mux::kMaxHostBytes);
  // A Unix socket the master binds (-L PATH:...) or connects to (-R ...:PATH) fits a sockaddr_un.
  if (spec.type == ossh::kMuxFwdLocal && spec.listen_port == ossh::kPortStreamLocal) {
    FUZZ_CHECK(!spec.listen_host.empty() && spec.listen_host.size() <= mux::kMaxUnixPathBytes);
  }
  if (spec.type == ossh::kMuxFwdRemote && spec.connect_port == ossh::kPortStreamLocal) {
    FUZZ_CHECK(!spec.connect_host.empty() && spec.connect_host.size() <= mux::kMaxUnixPathBytes);
  }
}

UniqueFd OpenOrDie(const char* path, int flags) {
  UniqueFd fd(::open(path, flags | O_CLOEXEC));
  FUZZ_CHECK(fd.valid());
  return fd;
}

// The fds one request lends, and the ends the harness keeps (the other side of a pipe, the
// terminal's master).
struct Lending {
  std::vector<UniqueFd> lent;
  std::vector<UniqueFd> kept_outputs;  // read and discarded each turn
  UniqueFd kept_input;                 // typed into once

  static Lending Make(const Options& options, std::size_t count) {
    Lending lending;
    switch (options.lent) {
      case LentKind::kDevNull:
        for (std::size_t i = 0; i < count; ++i) lending.lent.push_back(OpenOrDie("/dev/null", O_RDWR));
        break;
      case LentKind::kPath:
        for (std::size_t i = 0; i < count; ++i) lending.lent.push_back(OpenOrDie("/", O_PATH));
        break;
      case LentKind::kPipes:
        for (std::size_t i = 0; i < count; ++i) {
          int ends[2];
          FUZZ_CHECK(::pipe2(ends, O_CLOEXEC | O_NONBLOCK) == 0);
          if (i == 0) {  // stdin: the client keeps the writing end
            lending.lent.emplace_back(ends[0]);
            lending.kept_input = UniqueFd(ends[1]);
          } else {
            lending.lent.emplace_back(ends[1]);
            lending.kept_outputs.emplace_back(ends[0]);
          }
        }
        break;
      case LentKind::kTerminal: {
        // One terminal as stdin, stdout and stderr: three fds of one open file description.
        UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
        FUZZ_CHECK(master.valid() && ::grantpt(master.get()) == 0 && ::unlockpt(master.get()) == 0);
        FUZZ_CHECK(SetNonBlocking(master.get()));
        UniqueFd slave = OpenOrDie(::ptsname(master.get()), O_RDWR | O_NOCTTY);
        for (std::size_t i = 1; i < count; ++i) lending.lent.emplace_back(::fcntl(slave.get(), F_DUPFD_CLOEXEC, 0));
        lending.lent.push_back(std::move(slave));
        lending.kept_input = UniqueFd(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
        lending.kept_outputs.push_back(std::move(master));
        break;
      }
    }
    return lending;
  }
};

// One piece of the client's stream: bytes, or a request's fds to lend.
struct Chunk {
  std::vector<std::uint8_t> bytes;
  std::size_t fds = 0;
};

class Harness {
 public:
  Harness(const Options& options, std::vector<Chunk> chunks) : options_(options), chunks_(std::move(chunks)) {}

  void Run(std::vector<std::uint8_t> first_bytes) {
    int pair[2];
    FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0);
    UniqueFd server_end(pair[0]);
    client_ = UniqueFd(pair[1]);
    {
      mux::OpenSshMuxServer server([this](std::unique_ptr<mux::ChannelTask> task) { Start(std::move(task)); },
                                   MakeHooks());
      server.Adopt(std::move(server_end), std::move(first_bytes), options_.refused ? "no room for this client" : "");
      int idle = 0;
      for (int turn = 0; turn < kMaxTurns && idle < 3; ++turn) {
        bool progress = Write();
        if (!shut_ && options_.half_close && (chunk_ == chunks_.size() || send_failed_)) {
          ::shutdown(client_.get(), SHUT_WR);
          shut_ = true;
          progress = true;
        }
        if (Turn(server, turn)) progress = true;
        idle = progress ? 0 : idle + 1;
      }
      // The end: every task still held is dropped as a dead connection would drop it.
      for (auto& held : held_) held.task->Abort("fuzz: the connection is gone");
      held_.clear();
      server.Update();
      for (int turn = 0; turn < 8 && Turn(server, kMaxTurns); ++turn) {
      }
      FirePendingForwards();
    }
    FUZZ_CHECK(held_.empty());
    pending_forwards_.clear();
    client_.Reset();
    lendings_.clear();
    FUZZ_CHECK(mux::LentDescriptionCount() == 0);
  }

 private:
  struct Held {
    std::unique_ptr<mux::ChannelTask> task;
    std::shared_ptr<mux::ChannelPipes> pipes;
    int age = 0;
  };

  mux::OpenSshMuxServer::Hooks MakeHooks() {
    return {
        [this] { ++terminated_; },
        [this] { ++stopped_listening_; },
        [this](const ossh::ForwardSpec& spec, std::function<void(Result<std::uint32_t>)> done) {
          FUZZ_CHECK(!options_.refused);
          CheckForward(spec);
          auto answer = [fail = options_.fail_forwards, done = std::move(done)] {
            if (fail) return done(Fail("fuzz: the server refused the forward"));
            done(std::uint32_t{40000});
          };
          if (options_.defer_forwards) return pending_forwards_.push_back(std::move(answer));
          answer();
        },
        [this](const ossh::ForwardSpec& spec) -> Result<void> {
          FUZZ_CHECK(!options_.refused);
          CheckForward(spec);
          if (options_.fail_forwards) return Fail("fuzz: no such forward");
          return {};
        },
        // ssh -X: granted, or refused with a reason the client reads, as the input chooses.
        [this]() -> Result<mux::X11Request> {
          FUZZ_CHECK(!options_.refused);
          if (options_.fail_forwards) return Fail("fuzz: no display");
          return mux::X11Request{"MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff", 0};
        },
    };
  }

  void Start(std::unique_ptr<mux::ChannelTask> task) {
    FUZZ_CHECK(!options_.refused);
    ++started_;
    auto pipes = PipesOf::Get(*task);
    if (options_.tasks == TaskMode::kAbortNow) return task->Abort("fuzz: refused at once");
    held_.push_back({std::move(task), std::move(pipes), 0});
  }

  // Plays the channel side of each held task for one turn.
  void PlayTasks() {
    std::erase_if(held_, [this](Held& held) {
      const int age = held.age++;
      mux::ChannelPipes& pipes = *held.pipes;
      switch (options_.tasks) {
        case TaskMode::kAbortNow:
        case TaskMode::kAbortNextTurn:
          held.task->Abort("fuzz: refused a turn later");
          return true;
        case TaskMode::kHoldToEnd:
          if (!held.task->Abandoned()) return false;
          held.task->Abort("fuzz: abandoned");
          return true;
        case TaskMode::kPlaySession:
          break;
      }
      if (pipes.client_gone) {  // the driver closes the channel, or never opens it
        if (!pipes.opened) {
          held.task->Abort("fuzz: abandoned");
        } else {
          pipes.finished = true;
          pipes.exit_status = 255;
        }
        return true;
      }
      pipes.to_remote.clear();  // sent to the "server"
      pipes.window_changed = false;
      if (age == 0) {
        pipes.opened = true;
        pipes.tty_failed = options_.tty_failed;
      } else if (age == 1) {
        pipes.stdout_data += "fuzz output\r\n";
        pipes.stderr_data += "fuzz error\r\n";
      } else if (age >= 2 && pipes.local_eof) {
        pipes.remote_eof = true;
        pipes.exit_status = options_.exit_status;
        if (options_.signalled) pipes.exit_signal = "TERM";
        pipes.finished = true;
        return true;
      } else if (age >= 4) {
        pipes.remote_eof = true;
        pipes.finished = true;
        pipes.exit_status = options_.exit_status;
        return true;
      }
      return false;
    });
  }

  void FirePendingForwards() {
    auto pending = std::move(pending_forwards_);
    pending_forwards_.clear();
    for (auto& answer : pending) answer();
  }

  bool Turn(mux::OpenSshMuxServer& server, int turn) {
    bool progress = false;
    // One round of the server's events, without waiting.
    Poller poller;
    server.Watch(poller);
    poller.WakeBy(Poller::Clock::now());
    if (poller.Wait(nullptr) > 0) progress = true;
    server.ExpireDeadlines();
    if (options_.window_changes) {
      for (auto& lending : lendings_) {
        if (options_.lent != LentKind::kTerminal || lending.kept_outputs.empty()) continue;
        winsize size{static_cast<unsigned short>(24 + turn % 7), static_cast<unsigned short>(80 + turn % 3), 0, 0};
        (void)::ioctl(lending.kept_outputs[0].get(), TIOCSWINSZ, &size);
      }
      server.OnWindowChange();
    }
    // Tasks held to the end wait for nothing a turn can bring.
    if (!held_.empty() && options_.tasks != TaskMode::kHoldToEnd) progress = true;
    PlayTasks();
    server.Update();
    if (!pending_forwards_.empty()) progress = true;
    FirePendingForwards();
    if (ReadReplies()) progress = true;
    DrainOutputs();
    return progress;
  }

  bool Write() {
    bool progress = false;
    while (!send_failed_ && chunk_ < chunks_.size()) {
      Chunk& chunk = chunks_[chunk_];
      if (chunk.fds > 0) {
        if (!SendFds(chunk)) break;
        progress = true;
        ++chunk_;
        continue;
      }
      ssize_t n = ::send(client_.get(), chunk.bytes.data() + sent_, chunk.bytes.size() - sent_,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) send_failed_ = true;
        break;
      }
      progress = true;
      sent_ += static_cast<std::size_t>(n);
      if (sent_ == chunk.bytes.size()) {
        sent_ = 0;
        ++chunk_;
      }
    }
    return progress;
  }

  // Lends a request's fds, as one message each (OpenSSH's way) or all in one. False when the
  // socket is full (try again next turn) or gone.
  bool SendFds(Chunk& chunk) {
    if (!lending_) lending_ = Lending::Make(options_, chunk.fds);
    std::vector<UniqueFd>& lent = lending_->lent;
    while (lent_sent_ < lent.size()) {
      const std::size_t count = options_.one_message ? lent.size() - lent_sent_ : 1;
      char byte = 0;
      iovec iov{&byte, 1};
      std::vector<char> control(CMSG_SPACE(sizeof(int) * count));
      msghdr message{};
      message.msg_iov = &iov;
      message.msg_iovlen = 1;
      message.msg_control = control.data();
      message.msg_controllen = control.size();
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int) * count);
      for (std::size_t i = 0; i < count; ++i) {
        const int fd = lent[lent_sent_ + i].get();
        std::memcpy(CMSG_DATA(header) + i * sizeof(int), &fd, sizeof fd);
      }
      if (::sendmsg(client_.get(), &message, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (errno != EAGAIN && errno != EINTR) send_failed_ = true;
        return false;
      }
      lent_sent_ += count;
    }
    // The server has its own copies now (or they die with the socket): the client keeps the
    // other ends, and types into its stdin.
    lent.clear();
    if (lending_->kept_input.valid() && !options_.typed.empty()) {
      (void)!::write(lending_->kept_input.get(), options_.typed.data(), options_.typed.size());
    }
    if (options_.lent == LentKind::kPipes) lending_->kept_input.Reset();  // `echo x | ssh -S ...`
    lendings_.push_back(std::move(*lending_));
    lending_.reset();
    lent_sent_ = 0;
    return true;
  }

  void DrainOutputs() {
    char buffer[4096];
    for (auto& lending : lendings_) {
      for (auto& fd : lending.kept_outputs) {
        while (fd.valid() && ::read(fd.get(), buffer, sizeof buffer) > 0) {
        }
      }
    }
  }

  // Everything the server says must decode, HELLO first.
  bool ReadReplies() {
    bool progress = false;
    std::uint8_t buffer[65536];
    while (!eof_) {
      ssize_t n = ::recv(client_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n == 0) eof_ = true;
      if (n <= 0) break;
      replies_.insert(replies_.end(), buffer, buffer + n);
      progress = true;
    }
    std::span<const std::uint8_t> rest(replies_);
    while (true) {
      auto parsed = ossh::ParseFrame(rest);
      FUZZ_CHECK(parsed.has_value());
      if (!parsed->has_value()) break;
      auto message = ossh::DecodeServerMessage((*parsed)->frame);
      FUZZ_CHECK(message.has_value());
      FUZZ_CHECK(replies_seen_ > 0 || std::holds_alternative<ossh::Hello>(*message));
      ++replies_seen_;
      rest = rest.subspan((*parsed)->consumed);
    }
    replies_.erase(replies_.begin(), replies_.end() - static_cast<std::ptrdiff_t>(rest.size()));
    return progress;
  }

  const Options& options_;
  std::vector<Chunk> chunks_;
  std::size_t chunk_ = 0;
  std::size_t sent_ = 0;
  UniqueFd client_;
  bool send_failed_ = false;
  bool shut_ = false;
  bool eof_ = false;
  std::optional<Lending> lending_;  // the request's fds being sent
  std::size_t lent_sent_ = 0;
  std::vector<Lending> lendings_;   // sent: the client's ends
  std::vector<Held> held_;
  std::vector<std::function<void()>> pending_forwards_;
  std::vector<std::uint8_t> replies_;
  std::size_t replies_seen_ = 0;
  int started_ = 0;
  int terminated_ = 0;
  int stopped_listening_ = 0;
};

Options ParseOptions(std::span<const std::uint8_t>& data) {
  std::uint8_t header[3] = {0, 0, 0};
  for (std::size_t i = 0; i < 3 && !data.empty(); ++i) {
    header[i] = data[0];
    data = data.subspan(1);
  }
  Options options;
  options.tasks = static_cast<TaskMode>(header[0] & 3);
  options.lent = static_cast<LentKind>((header[0] >> 2) & 3);
  options.one_message = header[0] & 0x10;
  options.extra_fd = header[0] & 0x20;
  options.refused = header[0] & 0x40;
  options.half_close = header[0] & 0x80;
  options.raw_hello = header[1] & 0x01;
  options.defer_forwards = header[1] & 0x02;
  options.fail_forwards = header[1] & 0x04;
  options.window_changes = header[1] & 0x08;
  options.tty_failed = header[1] & 0x10;
  options.signalled = header[1] & 0x20;
  static constexpr int kStatuses[] = {0, 1, 127, 255};
  options.exit_status = kStatuses[header[1] >> 6];
  const std::size_t typed = std::min<std::size_t>(header[2], data.size());
  options.typed = std::string_view(reinterpret_cast<const char*>(data.data()), typed);
  data = data.subspan(typed);
  return options;
}

// Cuts the client's stream (HELLO included) into frames as a real client writes them, checks the
// validators on each, and puts a request's fds after each NEW_SESSION / NEW_STDIO_FWD.
std::vector<Chunk> Script(const Options& options, std::span<const std::uint8_t> stream) {
  std::vector<Chunk> chunks;
  while (!stream.empty()) {
    auto parsed = ossh::ParseFrame(stream);
    if (!parsed || !parsed->has_value()) {
      chunks.push_back({{stream.begin(), stream.end()}, 0});
      break;
    }
    const ossh::Frame& frame = (*parsed)->frame;
    CheckValidators(frame);
    const std::size_t consumed = (*parsed)->consumed;
    chunks.push_back({{stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(consumed)}, 0});
    std::size_t fds = frame.type == ossh::kMuxCNewSession    ? 3
                      : frame.type == ossh::kMuxCNewStdioFwd ? 2
                                                             : 0;
    if (fds > 0) chunks.push_back({{}, fds + (options.extra_fd ? 1 : 0)});
    stream = stream.subspan(consumed);
  }
  return chunks;
}

void RunOne(std::span<const std::uint8_t> data) {
  const Options options = ParseOptions(data);
  // ControlServer hands over a client whose first 8 bytes (length, type HELLO) it has read.
  std::vector<std::uint8_t> stream;
  if (options.raw_hello) {
    std::uint8_t length[4] = {0, 0, 0, 5};
    for (std::size_t i = 0; i < 4 && !data.empty(); ++i) {
      length[i] = data[0];
      data = data.subspan(1);
    }
    stream.assign(length, length + 4);
    stream.insert(stream.end(), {0, 0, 0, 1});
  } else {
    auto hello = ossh::EncodeClientMessage(ossh::Hello{});
    FUZZ_CHECK(hello.has_value());
    stream = std::move(*hello);
  }
  stream.insert(stream.end(), data.begin(), data.end());
  std::vector<Chunk> chunks = Script(options, stream);
  // The server has the first 8 bytes already; the first chunk (HELLO, or all of a stream whose
  // first length is bad) holds at least those.
  FUZZ_CHECK(!chunks.empty() && chunks[0].bytes.size() >= 8);
  std::vector<std::uint8_t> first_bytes(chunks[0].bytes.begin(), chunks[0].bytes.begin() + 8);
  chunks[0].bytes.erase(chunks[0].bytes.begin(), chunks[0].bytes.begin() + 8);
  Harness harness(options, std::move(chunks));
  harness.Run(std::move(first_bytes));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::SilenceLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::size_t fds_before = fuzz::OpenFdCount();
  RunOne(std::span(data, size));
  FUZZ_CHECK(fuzz::OpenFdCount() == fds_before);
  return 0;
}
