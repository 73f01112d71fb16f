// The control-protocol side of the master's socket: one state machine per client, a
// {type -> handler} table, bounded buffers both ways. The first frame must be Hello; a frame
// that cannot be parsed, or is too big, closes that client only; an unknown type gets an
// ErrorReply and the client stays.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/poller.h"
#include "base/unique_fd.h"
#include "proto/control.pb.h"
#include "proto/frame.h"

namespace mconnect::mux {

// What the master offers to control clients. Asynchronous answers arrive through callbacks,
// which may run after the asking client has gone (then they are dropped).
class MasterServices {
 public:
  template <typename T>
  using Reply = std::function<void(std::expected<T, control::ErrorReply>)>;

  virtual ~MasterServices() = default;
  virtual control::StatusReply Status() = 0;
  virtual void Exec(const control::ExecRequest& request, Reply<control::ExecReply> reply) = 0;
  virtual void DiscoverIp(const control::DiscoverIpRequest& request, Reply<control::DiscoverIpReply> reply) = 0;
  virtual void StartMoshServer(const control::StartMoshServerRequest& request,
                               Reply<control::StartMoshServerReply> reply) = 0;
  virtual void StartRelay(const control::StartRelayRequest& request, Reply<control::StartRelayReply> reply) = 0;
  // Now, ending what the master carries; or, with `when_idle`, as `ssh -O stop`: no new
  // clients, and exit once the last session and forward has ended.
  virtual void Stop(bool when_idle) = 0;
  // A client whose first frame is OpenSSH's mux HELLO: its socket and the bytes read so far
  // (exactly that frame's first 8 bytes) go to the OpenSSH mux server.
  // `refusal`, when not empty: the master has no room for this client and says so to whatever it
  // asks (an OpenSSH session hears it on its stderr, so that ssh does not log in by itself).
  virtual void AdoptOpenSshClient(UniqueFd fd, std::vector<std::uint8_t> first_bytes, std::string refusal) = 0;
};

class ControlServer {
 public:
  explicit ControlServer(MasterServices& services);
  ~ControlServer();

  // A client from accept(). With a `refusal`, it is only told that (as an ErrorReply, with
  // `refusal_hint`) and closed; an OpenSSH client goes on to the OpenSSH server with it.
  void Add(UniqueFd client, std::string refusal = {}, std::string refusal_hint = {});
  // Clients being refused right now.
  std::size_t refusing() const;
  // The fds admitted clients may still bring: each not yet handed over may become an OpenSSH
  // session that lends three (see FdBudget::Room).
  std::size_t promised_fds() const;
  // Registers each client's socket for this round, and the wake-up its deadlines need: a client
  // must finish its Hello within an absolute deadline of connecting (not an idle timer that each
  // byte resets), so one that stalls mid-frame cannot hold a slot forever; a client with requests
  // waiting for their turn (ProcessBacklogs) wants the loop back at once.
  void Watch(Poller& poller);
  std::size_t client_count() const { return clients_.size(); }
  void ExpireHandshakes();
  // Answers requests that were read but left for a later turn (see ProcessFrames).
  void ProcessBacklogs();
  // Sends what is queued (best effort, bounded time) before the master exits.
  void FlushAll();

 private:
  struct Client;
  using Handler = void (ControlServer::*)(Client&, const proto::Frame&);

  std::optional<std::chrono::steady_clock::time_point> NextDeadline() const;
  // One client's turn in a round. Handlers may add replies to any client and close any: the
  // client is looked up by its id, and closed ones are removed only once the round's events ran.
  void OnEvents(std::uint64_t id, short revents);
  void ReadFrom(Client& client);
  // Answers the complete frames already read, a turn's worth at most and only while the client
  // takes its replies; the rest waits in its input for a later turn.
  void ProcessFrames(Client& client);
  // Tells a control client there is no room for it, and closes it.
  void Refuse(Client& client);
  void WriteTo(Client& client);
  void Dispatch(Client& client, const proto::Frame& frame);
  void Send(Client& client, proto::MessageType type, const google::protobuf::MessageLite& message);
  template <typename T>
  MasterServices::Reply<T> ReplyTo(const Client& client, proto::MessageType type);
  template <typename Request, typename Answer>
  void Ask(Client& client, const proto::Frame& frame, std::string_view name, proto::MessageType reply_type,
           void (MasterServices::*ask)(const Request&, MasterServices::Reply<Answer>));
  void SendTo(std::uint64_t client_id, proto::MessageType type, const google::protobuf::MessageLite& message);
  void Close(Client& client, std::string_view why);

  void OnHello(Client& client, const proto::Frame& frame);
  void OnStatus(Client& client, const proto::Frame& frame);
  void OnExec(Client& client, const proto::Frame& frame);
  void OnDiscoverIp(Client& client, const proto::Frame& frame);
  void OnStartMoshServer(Client& client, const proto::Frame& frame);
  void OnStartRelay(Client& client, const proto::Frame& frame);
  void OnStop(Client& client, const proto::Frame& frame);

  static const std::map<std::uint32_t, Handler>& Handlers();

  MasterServices& services_;
  std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::uint64_t next_id_ = 1;
};

}  // namespace mconnect::mux
