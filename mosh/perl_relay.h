// The text of mosh/relay.pl, the perl twin of `mconnect relay` (mosh/relay_server.h), for a server
// that has perl but no mconnect. The build generates its definition from the file
// (mosh/embed_perl_relay.cmake), leaving out the leading comment lines, so that what the master
// sends is only the program: `perl -e TEXT PORT PID` (RelayCommand, mux/mosh_over_ssh/mosh_over_ssh.h).
#pragma once

namespace mconnect::mosh {

extern const char kPerlRelay[];

}  // namespace mconnect::mosh
