// sluicectl's side of the control socket: one request line out, the whole answer back, every
// socket call against one overall deadline so sluicectl never hangs on a stuck server.
// Thread contract: reentrant; each call opens and closes its own connection.
#pragma once

#include <string>

#include "lib/common/expected.hpp"

namespace sluice::ctlclient {

inline constexpr int kTimeoutMs = 5000;

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;

// Sends `line` and reads until the server closes. Errors say what failed; the caller adds
// the socket path. `connect_errno` is set when the connection itself failed; `sent` once the
// request was written (the server may act on it, answered or not).
Expected<std::string> send_request(const std::string& path, const std::string& line, int& connect_errno, bool& sent);

// What to suggest after a failed connect(): who may reach the socket, or whether Sluice runs.
const char* connect_hint(int connect_errno);

// A read-only request (list, stats) as the views need it: the body of an `ok` answer, or the
// text sluicectl prints for the failure (without its "sluicectl: " prefix) and the exit status
// it means: kExitServerError for an `error:` answer, kExitUsage for a connection problem or
// an answer that is not one.
struct Answer {
    int exit_code = kExitOk;
    std::string body;
    std::string error;
};
Answer query(const std::string& path, const std::string& line);

}  // namespace sluice::ctlclient
