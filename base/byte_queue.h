// A first-in first-out run of bytes for relaying between an SSH channel and a local fd: append
// at the back, consume from the front. It is a ring, so consuming never moves the bytes behind:
// std::string's erase(0, n) moved everything queued behind each partial write to a 64 KiB pipe,
// 9 % of the master's time at full throughput; a linear buffer compacted now and then still
// spent 4 %. The ring grows (doubling, copying once) when asked to hold more than it can, and
// never shrinks, as std::string did not.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace mconnect {

class ByteQueue {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  // The first bytes queued, as far as they lie in one piece (all of them, or up to the ring's
  // end): what a single write(2) can take. After consume(Front().size()) the rest follows.
  std::string_view Front() const;
  // Everything queued, copied out in order (for tests and small replies).
  std::string ToString() const;

  void append(std::string_view more);
  ByteQueue& operator+=(std::string_view more) {
    append(more);
    return *this;
  }
  // Puts bytes before everything queued (a reply that must reach the reader first).
  void prepend(std::string_view front);
  // Drops the first n bytes (n ≤ size()).
  void consume(std::size_t n);
  void clear() { head_ = size_ = 0; }

  // Appends what read(p, room) writes at p, with no staging copy: room is at most `limit`
  // (less when the free space wraps past the ring's end; call again for more). `read` returns a
  // byte count or a negative error, as read(2) and libssh2 do; only a positive count is kept.
  // Returns what `read` returned.
  template <typename Read>
  ssize_t AppendFrom(std::size_t limit, Read&& read) {
    Reserve(size_ + limit);
    std::size_t tail = (head_ + size_) & (capacity_ - 1);
    std::size_t room = tail >= head_ ? capacity_ - tail : head_ - tail;
    if (room > limit) room = limit;
    ssize_t got = read(ring_.get() + tail, room);
    if (got > 0) size_ += static_cast<std::size_t>(got);
    return got;
  }

 private:
  // Makes the ring hold at least `total` bytes, keeping what is queued.
  void Reserve(std::size_t total);
  // Copies `bytes` into the ring from position `at` on, wrapping at its end.
  void CopyIn(std::size_t at, std::string_view bytes);

  std::unique_ptr<char[]> ring_;
  std::size_t capacity_ = 0;  // a power of two (or 0 before the first byte)
  std::size_t head_ = 0;      // where the first queued byte is
  std::size_t size_ = 0;
};

}  // namespace mconnect
