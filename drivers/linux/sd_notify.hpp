// The service manager's readiness protocol (sd_notify(3)) without libsystemd: one datagram
// of newline-separated KEY=VALUE assignments to the socket named by $NOTIFY_SOCKET.
//
// Under systemd with Type=notify, `systemctl start` waits for READY=1, `systemctl reload`
// waits from RELOADING=1 to the next READY=1, and `systemctl status` shows the last STATUS=.
// Outside systemd ($NOTIFY_SOCKET unset) every call is a successful no-op, so the same binary
// runs from a shell, a test or a unit.
// Thread contract: plain blocking calls (one short datagram each); any thread.
#pragma once

#include <string>
#include <string_view>

#include "lib/common/expected.hpp"

namespace sluice::linux_sd {

// Sends `state` (e.g. "READY=1\nSTATUS=forwarding") to $NOTIFY_SOCKET: a filesystem path, or
// an abstract socket written with a leading '@'. Unset or empty: nothing is sent, not an error.
Status notify(std::string_view state);

// "RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC in µs>": systemd uses the timestamp to tell
// this reload from an earlier one.
std::string reloading_message();

}  // namespace sluice::linux_sd
