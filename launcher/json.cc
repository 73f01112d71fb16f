#include "launcher/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/type.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <memory>

namespace mconnect::launcher {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::util::TypeResolver;

constexpr std::string_view kTypeUrlPrefix = "type.googleapis.com";

// Resolves types as the message's own pool does, but calls every `bytes` field a string: a path
// or a name kept as bytes (it need not be UTF-8) is shown as text, not as base64.
class BytesAsText : public TypeResolver {
 public:
  explicit BytesAsText(const google::protobuf::DescriptorPool* pool)
      : pool_(google::protobuf::util::NewTypeResolverForDescriptorPool(std::string(kTypeUrlPrefix), pool)) {}

  google::protobuf::util::Status ResolveMessageType(const std::string& url, google::protobuf::Type* type) override {
    auto status = pool_->ResolveMessageType(url, type);
    for (auto& field : *type->mutable_fields()) {
      if (field.kind() == google::protobuf::Field::TYPE_BYTES) field.set_kind(google::protobuf::Field::TYPE_STRING);
    }
    return status;
  }
  google::protobuf::util::Status ResolveEnumType(const std::string& url, google::protobuf::Enum* type) override {
    return pool_->ResolveEnumType(url, type);
  }

 private:
  std::unique_ptr<TypeResolver> pool_;
};

// Every `bytes` field in `message`, and in the messages in it, made valid UTF-8 for BytesAsText.
void BytesToValidUtf8(Message& message) {
  const auto* descriptor = message.GetDescriptor();
  const auto* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const bool repeated = field->is_repeated();
    const int count = repeated ? reflection->FieldSize(message, field) : (reflection->HasField(message, field) ? 1 : 0);
    for (int at = 0; at < count; ++at) {
      if (field->type() == FieldDescriptor::TYPE_MESSAGE) {
        BytesToValidUtf8(repeated ? *reflection->MutableRepeatedMessage(&message, field, at)
                                  : *reflection->MutableMessage(&message, field));
      } else if (field->type() == FieldDescriptor::TYPE_BYTES && repeated) {
        reflection->SetRepeatedString(&message, field, at,
                                      ValidUtf8(reflection->GetRepeatedString(message, field, at)));
      } else if (field->type() == FieldDescriptor::TYPE_BYTES) {
        reflection->SetString(&message, field, ValidUtf8(reflection->GetString(message, field)));
      }
    }
  }
}

}  // namespace

std::string ToJson(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::unique_ptr<Message> shown(message.New());
  shown->CopyFrom(message);
  BytesToValidUtf8(*shown);
  BytesAsText resolver(message.GetDescriptor()->file()->pool());
  std::string out;
  (void)google::protobuf::util::BinaryToJsonString(
      &resolver, std::string(kTypeUrlPrefix) + "/" + message.GetDescriptor()->full_name(), shown->SerializeAsString(),
      &out, options);
  return out;
}

namespace {

// The length of the valid UTF-8 sequence at the start of `text`, or 0 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF).
std::size_t ValidSequence(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t length = ValidSequence(text);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      text.remove_prefix(1);
    } else {
      out.append(text.substr(0, length));
      text.remove_prefix(length);
    }
  }
  return out;
}

}  // namespace mconnect::launcher
