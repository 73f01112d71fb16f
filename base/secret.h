// Secrets in memory (passphrases, passwords, the mosh session key) are cleared once used, from
// every place they were copied to: our own buffers, but also the blocks a library or a growing
// std::string freed on the way, and the stack frames of functions that have returned. What is
// left in freed memory or below the stack pointer stays readable in the process (a core dump,
// /proc/PID/mem, a later bug that reads uninitialised memory) until something reuses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mconnect {

// Clears `size` bytes at `data` in a way the compiler cannot drop (OPENSSL_cleanse).
void Wipe(void* data, std::size_t size);
// Clears all of `text`'s storage, its capacity included (where a longer value it held earlier
// left its bytes), in place (a short string lives inside the object), and empties it.
void Wipe(std::string& text);
void Wipe(std::vector<std::uint8_t>& bytes);

// Removes the first `count` bytes. erase() alone moves the rest down and leaves a copy of the
// last `count` bytes beyond the new end: that copy is cleared.
void EraseFrontWiped(std::vector<std::uint8_t>& bytes, std::size_t count);

// Makes room for at least `size` bytes without letting the vector reallocate on its own, which
// would free the old block with its bytes in it: they are copied to a larger block, and the old
// one is cleared. The capacity at least doubles, as the vector's own growth would.
void ReserveWiped(std::vector<std::uint8_t>& bytes, std::size_t size);

// Clears the kWipeStackBytes of stack below the caller's frame, where the functions it called
// (and returned from) kept their locals: a read(2) buffer, a library's temporaries. Call it
// once the calls that saw a secret are done. (libgcrypt's _gcry_burn_stack does the same.)
inline constexpr std::size_t kWipeStackBytes = 64 << 10;
void WipeStack();

// Allocator callbacks for a library that keeps secrets in memory it allocates itself (libssh2:
// decrypted packets, keys, passwords): a free() that clears the whole block first
// (malloc_usable_size), and a realloc() that never leaves an uncleared old block behind.
void WipeAndFree(void* block);
void* WipingRealloc(void* block, std::size_t size);

// While one is alive on a thread with `active`, every block that thread frees through operator
// delete (std::string, std::vector, protobuf messages, whatever a library builds from them) is
// cleared before it goes back to malloc. For the stretch of code that carries a secret through
// code we do not control: a parser's temporaries, a message's fields, a frame being serialized.
// Nests. For this, secret.cc replaces the global operator new and delete (non-aligned forms)
// with malloc and free; outside such a stretch a delete costs one thread-local test more.
class WipeFrees {
 public:
  explicit WipeFrees(bool active = true);
  ~WipeFrees();
  WipeFrees(const WipeFrees&) = delete;
  WipeFrees& operator=(const WipeFrees&) = delete;

  // Whether this thread is inside one.
  static bool Active();

 private:
  bool active_;
};

}  // namespace mconnect
