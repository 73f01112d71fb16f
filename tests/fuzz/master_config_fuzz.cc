// The master's reading of its MasterConfig (proto/master_config.h) on arbitrary bytes, as the
// serialized message (`--config-fd`) and as text format (`--config=FILE`). Beyond "no crash":
// a refusal is one line; what is accepted has every required field, every optional field set
// and every value within its bounds, and reads back the same once written again.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/message_differencer.h>

#include "proto/master_config.h"
#include "tests/fuzz/harness.h"

using namespace mconnect;

namespace {

void CheckAccepted(const control::MasterConfig& c) {
  FUZZ_CHECK(!c.user().empty() && !c.host().empty() && !c.socket_path().empty());
  FUZZ_CHECK(c.has_port() && c.port() >= 1 && c.port() <= 65535);
  FUZZ_CHECK(control::MasterConfig::AddressFamily_IsValid(c.address_family()));
  FUZZ_CHECK(control::MasterConfig::HostKeyChecking_IsValid(c.strict_host_key_checking()));
  FUZZ_CHECK(c.has_pubkey_authentication() && c.has_kbd_interactive_authentication() &&
             c.has_password_authentication() && c.has_reconnect());
  FUZZ_CHECK(c.has_number_of_password_prompts() && c.number_of_password_prompts() <= INT_MAX);
  FUZZ_CHECK(c.has_connect_timeout_s() && c.connect_timeout_s() >= 1 && c.connect_timeout_s() <= INT_MAX);
  FUZZ_CHECK(c.has_keepalive_s() && c.keepalive_s() >= 1 && c.keepalive_s() <= 86400);
  FUZZ_CHECK(c.has_keepalive_count() && c.keepalive_count() <= 1000);
  FUZZ_CHECK(c.has_reconnect_wait_s() && c.reconnect_wait_s() <= 3600);
  FUZZ_CHECK(c.has_persist_s() && c.persist_s() >= -1);
  FUZZ_CHECK(c.has_remote_ip_ttl_s() && c.remote_ip_ttl_s() <= INT_MAX);
  FUZZ_CHECK(c.verbosity() <= INT_MAX);
  FUZZ_CHECK(c.socket_path().find('\0') == std::string::npos);
  for (const auto& file : c.identity_files()) FUZZ_CHECK(file.find('\0') == std::string::npos);
  auto again = proto::ParseMasterConfig(c.SerializeAsString());
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*again, c));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // protobuf's own complaints (a string field that is not UTF-8) are not findings.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const bool text : {false, true}) {
    auto config = text ? proto::ParseMasterConfigText(input) : proto::ParseMasterConfig(input);
    if (config) {
      CheckAccepted(*config);
    } else {
      FUZZ_CHECK(!config.error().message.empty());
      FUZZ_CHECK(config.error().message.find('\n') == std::string::npos);
    }
  }
  return 0;
}
