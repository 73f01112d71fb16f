#include "base/secret.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <openssl/crypto.h>

#if defined(__SANITIZE_ADDRESS__)
#define MCONNECT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MCONNECT_ASAN 1
#endif
#endif

#if defined(MCONNECT_ASAN)
// From <sanitizer/allocator_interface.h>, which GCC 12 does not ship.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, std::size_t),
                                                         void (*free_hook)(const volatile void*));
extern "C" std::size_t __sanitizer_get_allocated_size(const volatile void* block);
#endif

namespace mconnect {
namespace {

constinit thread_local int t_wipe_frees = 0;

// The block's whole usable size, not only what was asked for: a string's capacity, the slack
// malloc added.
void ClearBlock(void* block) {
  if (block != nullptr) OPENSSL_cleanse(block, ::malloc_usable_size(block));
}

#if defined(MCONNECT_ASAN)

// ASan brings its own operator new and delete, which check that they pair; rather than replace
// them, it is asked to call us before each free.
void AfterMalloc(const volatile void* /*block*/, std::size_t /*size*/) {}

void BeforeFree(const volatile void* block) {
  if (t_wipe_frees > 0 && block != nullptr) {
    OPENSSL_cleanse(const_cast<void*>(block), __sanitizer_get_allocated_size(block));
  }
}

[[gnu::constructor]] void InstallFreeHook() { __sanitizer_install_malloc_and_free_hooks(AfterMalloc, BeforeFree); }

#else

void* NewBlock(std::size_t size) {
  if (size == 0) size = 1;
  while (true) {
    if (void* block = std::malloc(size)) return block;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* NewBlockOrNull(std::size_t size) noexcept {
  try {
    return NewBlock(size);
  } catch (...) {
    return nullptr;
  }
}

void DeleteBlock(void* block) noexcept {
  if (t_wipe_frees > 0) ClearBlock(block);
  std::free(block);
}

#endif

}  // namespace

void Wipe(void* data, std::size_t size) {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

void Wipe(std::string& text) {
  text.resize(text.capacity());  // the bytes a longer value left behind the end become ours
  Wipe(text.data(), text.size());
  text.clear();
}

void Wipe(std::vector<std::uint8_t>& bytes) {
  bytes.resize(bytes.capacity());
  Wipe(bytes.data(), bytes.size());
  bytes.clear();
}

void EraseFrontWiped(std::vector<std::uint8_t>& bytes, std::size_t count) {
  count = std::min(count, bytes.size());
  const std::size_t left = bytes.size() - count;
  std::memmove(bytes.data(), bytes.data() + count, left);
  Wipe(bytes.data() + left, count);
  bytes.resize(left);
}

void ReserveWiped(std::vector<std::uint8_t>& bytes, std::size_t size) {
  if (size <= bytes.capacity()) return;
  std::vector<std::uint8_t> larger;
  larger.reserve(std::max(size, 2 * bytes.capacity()));
  larger.assign(bytes.begin(), bytes.end());
  Wipe(bytes);
  bytes.swap(larger);
}

// Not inlined, so that its frame lies below the caller's, where the caller's callees were.
[[gnu::noinline]] void WipeStack() {
  unsigned char below[kWipeStackBytes];
  OPENSSL_cleanse(below, sizeof below);
  asm volatile("" : : "r"(below) : "memory");
}

void WipeAndFree(void* block) {
  ClearBlock(block);
  std::free(block);
}

void* WipingRealloc(void* block, std::size_t size) {
  if (block == nullptr) return std::malloc(size);
  const std::size_t usable = ::malloc_usable_size(block);
  if (size <= usable) return block;  // it fits already: nothing moves
  void* moved = std::malloc(size);
  if (moved == nullptr) return nullptr;  // as realloc: the old block stays the caller's
  std::memcpy(moved, block, usable);
  WipeAndFree(block);
  return moved;
}

WipeFrees::WipeFrees(bool active) : active_(active) {
  if (active_) ++t_wipe_frees;
}

WipeFrees::~WipeFrees() {
  if (active_) --t_wipe_frees;
}

bool WipeFrees::Active() { return t_wipe_frees > 0; }

}  // namespace mconnect

#if !defined(MCONNECT_ASAN)
// The global allocation functions, replaced (as the standard allows a program to) so that
// WipeFrees can clear what is deleted. The aligned forms stay the library's: they pair with
// each other, and nothing secret is over-aligned.
void* operator new(std::size_t size) { return mconnect::NewBlock(size); }
void* operator new[](std::size_t size) { return mconnect::NewBlock(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return mconnect::NewBlockOrNull(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return mconnect::NewBlockOrNull(size); }
void operator delete(void* block) noexcept { mconnect::DeleteBlock(block); }
void operator delete[](void* block) noexcept { mconnect::DeleteBlock(block); }
void operator delete(void* block, std::size_t) noexcept { mconnect::DeleteBlock(block); }
void operator delete[](void* block, std::size_t) noexcept { mconnect::DeleteBlock(block); }
void operator delete(void* block, const std::nothrow_t&) noexcept { mconnect::DeleteBlock(block); }
void operator delete[](void* block, const std::nothrow_t&) noexcept { mconnect::DeleteBlock(block); }
#endif
