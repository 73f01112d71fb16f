// The master's memory of remote-ip answers, keyed by strategy spec ("command:curl -sS
// https://ipinfo.io/ip"). A master serves one destination, so the spec alone is the key. Only
// successful answers are stored (a failure is retried next time). Time is passed in, so the
// cache is pure and testable without sleeping.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mconnect::remoteip {

class Cache {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Hit {
    std::string address;
    std::chrono::milliseconds age{0};
  };

  // Entries older than `ttl` are not returned; a ttl of zero or less caches nothing.
  explicit Cache(std::chrono::steady_clock::duration ttl) : ttl_(ttl) {}

  void Put(std::string_view spec, std::string address, TimePoint now);
  // The stored answer while it is younger than the ttl. A clock that went backwards (an
  // injected one in tests) gives age zero rather than a negative one.
  std::optional<Hit> Get(std::string_view spec, TimePoint now) const;
  // The chain's newest valid answer, whether or not its strategy is cached (peer and static are
  // not) and however old (for `mconnect status`), with the spec that gave it and its age;
  // nullopt before the first. Kept even with a ttl of zero and across Clear().
  struct Latest {
    std::string spec;
    Hit hit;
  };
  void Note(std::string_view spec, std::string address, TimePoint now);
  std::optional<Latest> Newest(TimePoint now) const;
  // Forgets one answer, e.g. when the UDP probe found it unreachable.
  void Erase(std::string_view spec);
  // Forgets everything, e.g. after the master reconnected (the peer may have changed).
  void Clear() { entries_.clear(); }
  std::chrono::steady_clock::duration ttl() const { return ttl_; }

 private:
  struct Entry {
    std::string address;
    TimePoint stored;
  };
  std::chrono::steady_clock::duration ttl_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::optional<std::pair<std::string, Entry>> latest_;  // spec, answer
};

}  // namespace mconnect::remoteip
