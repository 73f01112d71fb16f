#include "mux/ssh/reconnector.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "base/log.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace mconnect::mux {

// One attempt at a time writes here (Start's precondition), and it stores its outcome and
// signals the eventfd in one critical section: once Take has seen an outcome, that attempt's
// write has happened and been drained, and nothing of it can wake the loop for a later attempt.
struct Reconnector::Shared {
  std::mutex mutex;
  UniqueFd event;                  // made by the loop's thread while no attempt runs
  std::optional<Outcome> outcome;  // guarded by mutex

  void Finish(Outcome finished) {
    std::lock_guard lock(mutex);
    outcome = std::move(finished);
    std::uint64_t one = 1;
    // Cannot fail: the fd is a valid eventfd (Start checks), and its counter only blocks at
    // 2^64 - 1, which one write per attempt, drained by each Take, never reaches.
    MCONNECT_CHECK(::write(event.get(), &one, sizeof one) == sizeof one);
  }
};

namespace {

UniqueFd MakeEvent() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

}  // namespace

Reconnector::Reconnector(ConnectParams params) : params_(std::move(params)), shared_(std::make_shared<Shared>()) {
  params_.interactive = false;
  params_.host_key_policy = HostKeyPolicy::kStrict;
  shared_->event = MakeEvent();
  if (!shared_->event) log::Warn("cannot make an eventfd for connection attempts yet: {}", std::strerror(errno));
}

Reconnector::~Reconnector() = default;

int Reconnector::fd() const { return shared_->event.get(); }

void Reconnector::Start() {
  MCONNECT_CHECK(!running_);
  if (!shared_->event) {
    shared_->event = MakeEvent();
    if (!shared_->event) {
      log::Warn("cannot start a connection attempt: {}", std::strerror(errno));
      return;
    }
  }
  running_ = true;
  // The loop takes the signals (ppoll's mask); this thread must never be picked for them.
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    std::thread([shared = shared_, params = params_] {
      shared->Finish(SshConnection::Open(params, [](std::string_view) {}));
    }).detach();
  } catch (const std::system_error& error) {
    // No thread (EAGAIN: the process's or the user's thread limit). Like a network that is away,
    // this passes: the caller tries again after its backoff.
    const std::string why = fmt::format("cannot start a connection attempt: {}", error.code().message());
    shared_->Finish(std::unexpected(OpenError{why, OpenFailure::kNetwork}));
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

std::optional<Reconnector::Outcome> Reconnector::Take() {
  if (!running_) return std::nullopt;
  std::optional<Outcome> outcome;
  {
    std::lock_guard lock(shared_->mutex);
    outcome.swap(shared_->outcome);
    if (!outcome) return std::nullopt;
    std::uint64_t count = 0;
    // Drains the attempt's write, made under this lock before its outcome was there to take.
    MCONNECT_CHECK(::read(shared_->event.get(), &count, sizeof count) == sizeof count);
  }
  running_ = false;
  return outcome;
}

std::chrono::seconds ReconnectBackoff(int attempt) {
  if (attempt <= 1) return std::chrono::seconds(1);
  if (attempt >= 5) return std::chrono::seconds(15);
  return std::chrono::seconds(1 << (attempt - 1));
}

}  // namespace mconnect::mux
