#include "base/byte_queue.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "base/result.h"

namespace mconnect {

std::string_view ByteQueue::Front() const {
  if (size_ == 0) return {};
  return {ring_.get() + head_, std::min(size_, capacity_ - head_)};
}

std::string ByteQueue::ToString() const {
  std::string out(Front());
  if (out.size() < size_) out.append(ring_.get(), size_ - out.size());
  return out;
}

void ByteQueue::Reserve(std::size_t total) {
  if (total <= capacity_) return;
  std::size_t capacity = std::bit_ceil(std::max<std::size_t>(total, 4096));
  auto ring = std::make_unique_for_overwrite<char[]>(capacity);
  if (size_ > 0) {  // (an empty queue may have no ring: memcpy from null is undefined even for 0 bytes)
    std::string_view first = Front();
    std::memcpy(ring.get(), first.data(), first.size());
    std::memcpy(ring.get() + first.size(), ring_.get(), size_ - first.size());
  }
  ring_ = std::move(ring);
  capacity_ = capacity;
  head_ = 0;
}

void ByteQueue::CopyIn(std::size_t at, std::string_view bytes) {
  std::size_t first = std::min(bytes.size(), capacity_ - at);
  std::memcpy(ring_.get() + at, bytes.data(), first);
  std::memcpy(ring_.get(), bytes.data() + first, bytes.size() - first);
}

void ByteQueue::append(std::string_view more) {
  if (more.empty()) return;
  Reserve(size_ + more.size());
  CopyIn((head_ + size_) & (capacity_ - 1), more);
  size_ += more.size();
}

void ByteQueue::prepend(std::string_view front) {
  if (front.empty()) return;
  Reserve(size_ + front.size());
  head_ = (head_ - front.size()) & (capacity_ - 1);
  CopyIn(head_, front);
  size_ += front.size();
}

void ByteQueue::consume(std::size_t n) {
  MCONNECT_CHECK(n <= size_);
  size_ -= n;
  head_ = size_ == 0 ? 0 : (head_ + n) & (capacity_ - 1);
}

}  // namespace mconnect
