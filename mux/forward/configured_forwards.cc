#include "mux/forward/configured_forwards.h"

#include <algorithm>
#include <utility>

#include "base/log.h"

namespace mconnect::mux {
namespace {

// 5 s after the first failure, doubling, at most a minute apart.
std::chrono::seconds RetryDelay(int failures) {
  const int shift = std::clamp(failures - 1, 0, 4);
  return std::min(std::chrono::seconds(5 << shift), std::chrono::seconds(60));
}

bool IsRemote(const openssh::ForwardSpec& spec) { return spec.type == openssh::kMuxFwdRemote; }

}  // namespace

ConfiguredForwards::ConfiguredForwards(Forwards& forwards, std::vector<ConfiguredForward> list, bool exit_on_failure)
    : forwards_(forwards), exit_on_failure_(exit_on_failure) {
  for (auto& forward : list) {
    Entry& entry = entries_.emplace_back();
    entry.forward = std::move(forward);
  }
}

std::string_view ConfiguredForwards::StateName(State state) {
  switch (state) {
    case State::kOpening: return "opening";
    case State::kUp: return "up";
    case State::kWaiting: return "waiting";
    case State::kFailed: return "failed";
  }
  return "unknown";
}

std::string_view ConfiguredForwards::KindName(const openssh::ForwardSpec& spec) {
  return spec.type == openssh::kMuxFwdRemote ? "R" : spec.type == openssh::kMuxFwdDynamic ? "D" : "L";
}

std::string ConfiguredForwards::Name(const Entry& entry) {
  return fmt::format("forward {} ({})", entry.forward.text, entry.forward.origin);
}

void ConfiguredForwards::Start() {
  const auto now = Clock::now();
  for (auto& entry : entries_) Open(entry, now);
}

void ConfiguredForwards::Open(Entry& entry, Clock::time_point) {
  const std::uint64_t generation = ++entry.generation;
  entry.state = State::kOpening;
  // -L/-D answer at once (inside Open), -R once the server has answered.
  forwards_.Open(entry.forward.spec, [this, &entry, generation](Result<std::uint32_t> opened) {
    if (generation == entry.generation) OnOpened(entry, std::move(opened));
  });
}

void ConfiguredForwards::OnOpened(Entry& entry, Result<std::uint32_t> opened) {
  if (opened) {
    entry.state = State::kUp;
    entry.detail.clear();
    entry.listening = true;
    entry.opened_once = true;
    entry.failures = 0;
    entry.bound_port = IsRemote(entry.forward.spec) ? *opened : 0;
    log::Info("{}: up", Name(entry));
    return;
  }
  const std::string why = opened.error().message;
  entry.listening = false;
  const bool first_try = !entry.opened_once && entry.failures == 0;
  const bool same_reason = entry.state == State::kFailed && entry.detail == why;
  entry.state = State::kFailed;
  entry.detail = why;
  ++entry.failures;
  entry.retry_at = Clock::now() + RetryDelay(entry.failures);
  if (exit_on_failure_ && first_try) {
    if (!fatal_) fatal_ = fmt::format("{}: {} (ExitOnForwardFailure)", Name(entry), why);
    return;
  }
  // Said once per reason; the retries that fail alike go to the info log.
  const auto line = fmt::format("{}: {}; trying again in {} s", Name(entry), why, RetryDelay(entry.failures).count());
  if (same_reason) {
    log::Info("{}", line);
  } else {
    log::Warn("{}", line);
  }
}

void ConfiguredForwards::Reopen(Entry& entry, Clock::time_point now) {
  if (entry.listening) {
    openssh::ForwardSpec listened = entry.forward.spec;
    if (IsRemote(listened)) listened.listen_port = entry.bound_port;
    (void)forwards_.Close(listened);  // gone already when the server said no more
    entry.listening = false;
  }
  Open(entry, now);
}

void ConfiguredForwards::Update(bool link_up, std::uint64_t reconnects, Clock::time_point now) {
  const bool reconnected = reconnects != reconnects_seen_;
  reconnects_seen_ = reconnects;
  for (auto& entry : entries_) {
    const bool remote = IsRemote(entry.forward.spec);
    if (!link_up) {
      if (remote && entry.state != State::kWaiting) {
        // Its listener, or the request for one, died with the connection: an answer still to
        // come is the old connection's.
        ++entry.generation;
        entry.state = State::kWaiting;
        entry.detail = "the connection is lost; asked again once it is re-opened";
      } else if (!remote && entry.state == State::kUp) {
        entry.state = State::kWaiting;
        entry.detail = "listening; new connections wait for the connection to be re-opened";
      }
      continue;
    }
    if (!remote && entry.state == State::kWaiting) {
      entry.state = State::kUp;
      entry.detail.clear();
    } else if (remote && (reconnected || entry.state == State::kWaiting)) {
      Reopen(entry, now);
    } else if (entry.state == State::kFailed && now >= entry.retry_at && !fatal_) {
      Reopen(entry, now);
    }
  }
}

std::optional<ConfiguredForwards::Clock::time_point> ConfiguredForwards::NextDeadline() const {
  std::optional<Clock::time_point> next;
  for (const auto& entry : entries_) {
    if (entry.state == State::kFailed && (!next || entry.retry_at < *next)) next = entry.retry_at;
  }
  return next;
}

}  // namespace mconnect::mux
