#include "mux/reconnector.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>

#include "base/unique_fd.h"

namespace mconnect::mux {

struct Reconnector::Shared {
  UniqueFd event{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  std::mutex mutex;
  std::optional<Outcome> outcome;  // guarded by mutex
};

Reconnector::Reconnector(ConnectParams params) : params_(std::move(params)) {
  params_.interactive = false;
  params_.host_key_policy = HostKeyPolicy::kStrict;
}

Reconnector::~Reconnector() = default;

int Reconnector::fd() const { return shared_ ? shared_->event.get() : -1; }

void Reconnector::Start() {
  MCONNECT_CHECK(!running_);
  // A fresh shared state per attempt: a previous thread that is somehow still around writes
  // into its own.
  shared_ = std::make_shared<Shared>();
  running_ = true;
  // The loop takes the signals (ppoll's mask); this thread must never be picked for them.
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  std::thread([shared = shared_, params = params_] {
    Outcome outcome = SshConnection::Open(params, [](std::string_view) {});
    {
      std::lock_guard lock(shared->mutex);
      shared->outcome = std::move(outcome);
    }
    std::uint64_t one = 1;
    // An eventfd write of 1 cannot fail short of a bug (it would only block at 2^64 - 1).
    if (::write(shared->event.get(), &one, sizeof one) != sizeof one) std::abort();
  }).detach();
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

std::optional<Reconnector::Outcome> Reconnector::Take() {
  if (!running_) return std::nullopt;
  std::optional<Outcome> outcome;
  {
    std::lock_guard lock(shared_->mutex);
    outcome.swap(shared_->outcome);
  }
  if (!outcome) return std::nullopt;
  std::uint64_t count = 0;
  if (::read(shared_->event.get(), &count, sizeof count) < 0) {
    // Already drained: the outcome is what counts.
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
