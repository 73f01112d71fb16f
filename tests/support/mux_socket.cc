#include "tests/support/mux_socket.h"

#include <fcntl.h>

#include <thread>

namespace mconnect::testing {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::vector<std::uint8_t> EncodeMux(const mux::openssh::ClientMessage& message) {
  auto frame = mux::openssh::EncodeClientMessage(message);
  return frame ? *frame : std::vector<std::uint8_t>{};
}

mux::openssh::NewSession MuxSessionRequest(std::uint32_t request_id, std::string command) {
  mux::openssh::NewSession request;
  request.request_id = request_id;
  request.term = "xterm";
  request.command = std::move(command);
  request.escape_char = mux::openssh::kNoEscapeChar;
  return request;
}

Pipe MakePipe() {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// True once nobody reads the pipe any more: a write fails with EPIPE (SIGPIPE is ignored).
bool ReaderGoneWithin(int write_end, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  SetNonBlocking(write_end, true);
  while (Clock::now() < deadline) {
    char byte = 'x';
    if (::write(write_end, &byte, 1) < 0 && errno == EPIPE) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// True once every writer of the pipe is gone: read() returns 0 (data before that is dropped).
bool WritersGoneWithin(int read_end, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd pfd{read_end, POLLIN, 0};
    if (::poll(&pfd, 1, 50) > 0) {
      char buffer[4096];
      ssize_t n = ::read(read_end, buffer, sizeof buffer);
      if (n == 0) return true;
    }
  }
  return false;
}

// Reads what is in a pipe until `text` arrived or `timeout` passed; returns what was read.
std::string ReadUntil(int read_end, const std::string& text, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string got;
  while (got.find(text) == std::string::npos && Clock::now() < deadline) {
    pollfd pfd{read_end, POLLIN, 0};
    if (::poll(&pfd, 1, 50) > 0) {
      char buffer[4096];
      ssize_t n = ::read(read_end, buffer, sizeof buffer);
      if (n <= 0) break;
      got.append(buffer, static_cast<std::size_t>(n));
    }
  }
  return got;
}

}  // namespace mconnect::testing
