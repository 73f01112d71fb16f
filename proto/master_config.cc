#include "proto/master_config.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

namespace mconnect::proto {
namespace {

using control::MasterConfig;
namespace pb = google::protobuf;

Result<void> InRange(std::string_view field, std::int64_t value, std::int64_t low, std::int64_t high) {
  if (value < low || value > high) return Fail("MasterConfig.{} is {}; expected {}..{}", field, value, low, high);
  return {};
}

// A NUL byte cannot be on a command line: in a file name it would cut the name short. Every
// string and bytes field, repeated or not, through reflection so that a new field is covered.
Result<void> NoNulBytes(const MasterConfig& config) {
  const pb::Descriptor* descriptor = config.GetDescriptor();
  const pb::Reflection* reflection = config.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const pb::FieldDescriptor* field = descriptor->field(i);
    if (field->cpp_type() != pb::FieldDescriptor::CPPTYPE_STRING) continue;
    const int count = field->is_repeated() ? reflection->FieldSize(config, field) : 1;
    for (int j = 0; j < count; ++j) {
      std::string scratch;
      const std::string& value = field->is_repeated()
                                     ? reflection->GetRepeatedStringReference(config, field, j, &scratch)
                                     : reflection->GetStringReference(config, field, &scratch);
      if (value.find('\0') != std::string::npos) return Fail("MasterConfig.{} holds a NUL byte", field->name());
    }
  }
  return {};
}

Result<void> Required(const MasterConfig& config) {
  const std::pair<std::string_view, const std::string*> required[] = {
      {"user", &config.user()}, {"host", &config.host()}, {"socket_path", &config.socket_path()}};
  for (const auto& [field, value] : required) {
    if (value->empty()) return Fail("MasterConfig.{} is missing (required)", field);
  }
  return {};
}

Result<void> KnownEnums(const MasterConfig& config) {
  if (!MasterConfig::AddressFamily_IsValid(config.address_family())) {
    return Fail("MasterConfig.address_family is {}; expected ADDRESS_FAMILY_ANY, _INET or _INET6",
                static_cast<int>(config.address_family()));
  }
  if (!MasterConfig::HostKeyChecking_IsValid(config.strict_host_key_checking())) {
    return Fail("MasterConfig.strict_host_key_checking is {}; expected HOST_KEY_CHECKING_ASK, _YES, _ACCEPT_NEW or _NO",
                static_cast<int>(config.strict_host_key_checking()));
  }
  return {};
}

// The bounds mconnect-mux's flags had (CLI11's checks), and the defaults of the flags the
// launcher did not always pass. Fills in every unset optional field.
Result<void> BoundsAndDefaults(MasterConfig& config) {
  if (!config.has_port()) config.set_port(22);
  if (!config.has_pubkey_authentication()) config.set_pubkey_authentication(true);
  if (!config.has_kbd_interactive_authentication()) config.set_kbd_interactive_authentication(true);
  if (!config.has_password_authentication()) config.set_password_authentication(true);
  if (!config.has_number_of_password_prompts()) config.set_number_of_password_prompts(3);
  if (!config.has_connect_timeout_s()) config.set_connect_timeout_s(15);
  if (!config.has_keepalive_s()) config.set_keepalive_s(30);
  if (!config.has_keepalive_count()) config.set_keepalive_count(3);
  if (!config.has_reconnect()) config.set_reconnect(true);
  if (!config.has_reconnect_wait_s()) config.set_reconnect_wait_s(30);
  if (!config.has_persist_s()) config.set_persist_s(600);
  if (!config.has_remote_ip_ttl_s()) config.set_remote_ip_ttl_s(300);
  const struct {
    std::string_view field;
    std::int64_t value, low, high;
  } bounds[] = {
      {"port", config.port(), 1, 65535},
      {"number_of_password_prompts", config.number_of_password_prompts(), 0, INT_MAX},
      {"connect_timeout_s", config.connect_timeout_s(), 1, INT_MAX},
      {"keepalive_s", config.keepalive_s(), 1, 86400},
      {"keepalive_count", config.keepalive_count(), 0, 1000},
      {"reconnect_wait_s", config.reconnect_wait_s(), 0, 3600},
      {"persist_s", config.persist_s(), -1, INT_MAX},
      {"remote_ip_ttl_s", config.remote_ip_ttl_s(), 0, INT_MAX},
      {"verbosity", config.verbosity(), 0, INT_MAX},
  };
  for (const auto& bound : bounds) {
    if (auto ok = InRange(bound.field, bound.value, bound.low, bound.high); !ok) return ok;
  }
  return {};
}

// A configured forward as OpenSSH's mux client would send it (what the master's forwards take):
// known kind, ports in range, the fields its kind needs, no NUL (NoNulBytes sees only the top
// level).
Result<void> CheckForward(const control::ConfiguredForward& forward, int index) {
  using Forward = control::ConfiguredForward;
  const auto fail = [index](std::string_view why) { return Fail("MasterConfig.forwards[{}]: {}", index, why); };
  if (!Forward::Kind_IsValid(forward.kind())) return fail("unknown kind");
  if (!Forward::Origin_IsValid(forward.origin())) return fail("unknown origin");
  for (const std::string* field : {&forward.listen_host(), &forward.connect_host(), &forward.text()}) {
    if (field->size() > kMaxForwardField) return fail(fmt::format("a field is over {} bytes", kMaxForwardField));
    if (field->find('\0') != std::string::npos) return fail("holds a NUL byte");
  }
  const auto port_ok = [](std::uint32_t port) { return port <= 65535 || port == kPortStreamLocal; };
  if (!port_ok(forward.listen_port()) || !port_ok(forward.connect_port())) return fail("port out of range");
  const bool listen_path = forward.listen_port() == kPortStreamLocal;
  if (listen_path && forward.listen_host().empty()) return fail("a Unix socket forward without a path");
  if (forward.listen_port() == 0 && forward.kind() != Forward::KIND_REMOTE) return fail("listen port 0");
  if (forward.kind() == Forward::KIND_DYNAMIC) {
    if (listen_path) return fail("a dynamic forward cannot listen on a Unix socket");
    return {};
  }
  if (forward.connect_host().empty()) return fail("missing connect host");
  if (forward.kind() == Forward::KIND_LOCAL && forward.connect_port() == 0) return fail("connect port 0");
  return {};
}

Result<void> CheckForwards(const MasterConfig& config) {
  if (config.forwards_size() > kMaxConfiguredForwards) {
    return Fail("MasterConfig.forwards has {}; at most {}", config.forwards_size(), kMaxConfiguredForwards);
  }
  for (int i = 0; i < config.forwards_size(); ++i) {
    if (auto ok = CheckForward(config.forwards(i), i); !ok) return ok;
  }
  return {};
}

// Reads `fd` to its end, refusing more than kMaxMasterConfigBytes.
Result<std::string> ReadToEnd(int fd, std::string_view what) {
  auto bytes = mconnect::ReadToEnd(fd, kMaxMasterConfigBytes);
  if (!bytes) return Fail("cannot read {}: {}", what, bytes.error().message);
  return bytes;
}

// Keeps the first error the text-format parser reports, with its place (1-based).
class FirstError : public pb::io::ErrorCollector {
 public:
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (error_.empty()) error_ = fmt::format("line {}, column {}: {}", line + 1, column + 1, message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

}  // namespace

Result<MasterConfig> CheckMasterConfig(MasterConfig config) {
  if (auto ok = Required(config); !ok) return Fail(ok.error());
  if (auto ok = NoNulBytes(config); !ok) return Fail(ok.error());
  if (auto ok = KnownEnums(config); !ok) return Fail(ok.error());
  if (auto ok = BoundsAndDefaults(config); !ok) return Fail(ok.error());
  if (auto ok = CheckForwards(config); !ok) return Fail(ok.error());
  return config;
}

Result<MasterConfig> ParseMasterConfig(std::string_view bytes) {
  MasterConfig config;
  if (bytes.size() > kMaxMasterConfigBytes || !config.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Fail("the master's config ({} bytes) is not a serialized MasterConfig", bytes.size());
  }
  return CheckMasterConfig(std::move(config));
}

Result<MasterConfig> ParseMasterConfigText(std::string_view text) {
  MasterConfig config;
  FirstError errors;
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (text.size() > kMaxMasterConfigBytes || !parser.ParseFromString(std::string(text), &config)) {
    return Fail("not a MasterConfig in text format: {}", errors.error().empty() ? "too long" : errors.error());
  }
  return CheckMasterConfig(std::move(config));
}

Result<UniqueFd> MasterConfigFile(const MasterConfig& config) {
  const std::string bytes = config.SerializeAsString();
  UniqueFd fd(::memfd_create("mconnect-master-config", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return Fail("cannot hand the master its config: memfd_create: {}", std::strerror(errno));
  for (std::size_t written = 0; written < bytes.size();) {
    const ssize_t n = ::write(fd.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("cannot hand the master its config: write: {}", std::strerror(errno));
    written += static_cast<std::size_t>(n);
  }
  // Sealed: what the master reads is what was written here, whoever else holds the file.
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0 ||
      ::lseek(fd.get(), 0, SEEK_SET) != 0) {
    return Fail("cannot hand the master its config: {}", std::strerror(errno));
  }
  return fd;
}

Result<MasterConfig> ReadMasterConfig(int fd) {
  auto bytes = ReadToEnd(fd, fmt::format("the config on fd {}", fd));
  if (!bytes) return Fail(bytes.error());
  return ParseMasterConfig(*bytes);
}

Result<MasterConfig> ReadMasterConfigText(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return Fail("cannot open {}: {}", path, std::strerror(errno));
  auto text = ReadToEnd(fd.get(), path);
  if (!text) return Fail(text.error());
  auto config = ParseMasterConfigText(*text);
  if (!config) return Fail("{}: {}", path, config.error().message);
  return config;
}

}  // namespace mconnect::proto
