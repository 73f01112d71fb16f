// What `--json` prints (status, ip, doctor): a protobuf message in protobuf's JSON mapping, one
// line, with the .proto's own field names and every field, zero values included. Escaping is
// protobuf's, so any text in a field (a socket path, what a server said) stays valid JSON. A
// `bytes` field (a path need not be UTF-8) is shown as text through ValidUtf8, not as base64.
#pragma once

#include <string>
#include <string_view>

#include <google/protobuf/message.h>

namespace mconnect::launcher {

std::string ToJson(const google::protobuf::Message& message);

// `text` fit for a proto3 string field: each byte that is not part of valid UTF-8 becomes U+FFFD
// (protobuf would drop it silently from the JSON and complain on stderr). Text from elsewhere (a
// server's answer, ssh's stderr, a path) goes through this before it goes into a message.
std::string ValidUtf8(std::string_view text);

}  // namespace mconnect::launcher
