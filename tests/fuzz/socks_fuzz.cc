// Bytes from a client of the dynamic-forwarding port: parse them as the master does, the first
// message at Stage::kFirst, and after a SOCKS5 greeting the rest at the stage it names. Beyond
// "no crash", the properties the master relies on:
//   * consumption is positive and within the bytes given;
//   * NeedMore only below kMaxMessageBytes (a bounded buffer always makes progress);
//   * the result depends only on the message: the message alone and every longer input parse the
//     same, every proper prefix of an accepted message is NeedMore, and an error stays the same
//     error when more bytes arrive;
//   * a request's host is 1..255 bytes without NUL and its port is not 0;
//   * an error's reply is empty or one of the replies the encoders make.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mux/forward/socks_codec.h"

using namespace mconnect::mux::socks;

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

std::size_t Consumed(const Step& step) {
  if (const auto* reply = std::get_if<ReplyAndContinue>(&step)) return reply->consumed;
  if (const auto* request = std::get_if<Request>(&step)) return request->consumed;
  return 0;
}

void CheckError(const SocksError& error) {
  (void)SocksErrorName(error.kind);
  const auto& reply = error.reply;
  bool known = reply.empty() || reply == Socks4Reply(false) ||
               reply == std::vector<std::uint8_t>{0x05, 0xff};
  for (std::uint8_t status : {kSocks5GeneralFailure, kSocks5CommandNotSupported,
                              kSocks5AddressTypeNotSupported}) {
    known = known || reply == Socks5Reply(status);
  }
  Require(known);
}

// Parses `input` at `stage`, checks the properties, and returns the step (nullopt on error).
std::optional<Step> ParseAndCheck(std::span<const std::uint8_t> input, Stage stage) {
  auto step = ParseSocks(input, stage);
  if (!step) {
    CheckError(step.error());
    // An error is decided by bytes already there: more bytes cannot change or rescue it.
    for (std::uint8_t extra : {0x00, 0xff}) {
      std::vector<std::uint8_t> longer(input.begin(), input.end());
      longer.push_back(extra);
      auto again = ParseSocks(longer, stage);
      Require(!again.has_value() && again.error() == step.error());
    }
    return std::nullopt;
  }
  if (std::holds_alternative<NeedMore>(*step)) {
    Require(input.size() < kMaxMessageBytes);
    return *step;
  }
  std::size_t consumed = Consumed(*step);
  Require(consumed > 0 && consumed <= input.size() && consumed <= kMaxMessageBytes);

  // The message alone parses the same; each proper prefix needs more.
  auto alone = ParseSocks(input.first(consumed), stage);
  Require(alone.has_value() && *alone == *step);
  for (std::size_t size = 0; size < consumed; ++size) {
    auto prefix = ParseSocks(input.first(size), stage);
    Require(prefix.has_value() && std::holds_alternative<NeedMore>(*prefix));
  }

  if (const auto* request = std::get_if<Request>(&*step)) {
    (void)VersionName(request->version);
    Require(!request->host.empty() && request->host.size() <= 255);
    Require(request->host.find('\0') == std::string::npos);
    Require(request->port != 0);
  }
  if (const auto* reply = std::get_if<ReplyAndContinue>(&*step)) {
    Require(stage == Stage::kFirst && reply->next == Stage::kSocks5Request);
    Require(reply->reply == (std::vector<std::uint8_t>{0x05, 0x00}));
  }
  return *step;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> input(data, size);
  // Each stage on its own, so the request parser sees every input, not only what follows a
  // valid greeting.
  (void)ParseAndCheck(input, Stage::kSocks5Request);
  auto first = ParseAndCheck(input, Stage::kFirst);
  if (!first) return 0;
  if (const auto* reply = std::get_if<ReplyAndContinue>(&*first)) {
    (void)ParseAndCheck(input.subspan(reply->consumed), reply->next);
  }
  return 0;
}
