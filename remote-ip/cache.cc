#include "remote-ip/cache.h"

#include <algorithm>
#include <utility>

namespace mconnect::remoteip {

void Cache::Put(std::string_view spec, std::string address, TimePoint now) {
  if (ttl_ <= std::chrono::steady_clock::duration::zero()) return;
  // Expired entries are dropped here so the map never holds more than the live specs.
  std::erase_if(entries_, [&](const auto& entry) { return now - entry.second.stored >= ttl_; });
  entries_.insert_or_assign(std::string(spec), Entry{std::move(address), now});
}

std::optional<Cache::Hit> Cache::Get(std::string_view spec, TimePoint now) const {
  auto it = entries_.find(spec);
  if (it == entries_.end()) return std::nullopt;
  auto age = now - it->second.stored;
  if (age < std::chrono::steady_clock::duration::zero()) age = std::chrono::steady_clock::duration::zero();
  if (age >= ttl_) return std::nullopt;
  return Hit{it->second.address, std::chrono::duration_cast<std::chrono::milliseconds>(age)};
}

void Cache::Note(std::string_view spec, std::string address, TimePoint now) {
  latest_.emplace(std::string(spec), Entry{std::move(address), now});
}

std::optional<Cache::Latest> Cache::Newest(TimePoint now) const {
  if (!latest_) return std::nullopt;
  auto age = std::max(now - latest_->second.stored, std::chrono::steady_clock::duration::zero());
  return Latest{latest_->first,
                Hit{latest_->second.address, std::chrono::duration_cast<std::chrono::milliseconds>(age)}};
}

void Cache::Erase(std::string_view spec) {
  if (auto it = entries_.find(spec); it != entries_.end()) entries_.erase(it);
}

}  // namespace mconnect::remoteip
