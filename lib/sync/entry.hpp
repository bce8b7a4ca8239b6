// What the tier replicates: the state of one instance that a peer cannot recompute.
//
// Two kinds of state travel (docs/sync-protocol.md): fullnat sessions (the SNAT address and
// port a session was given and its backend: Maglev cannot give them back) and persistence
// entries (which backend a client network is pinned to). Each has an add/update and a remove.
// Everything is named by addresses and ports, never by the sender's table indices: two
// instances build the same indices from the same configuration, but a reload on one of them
// while the other has not reloaded yet must not make a session land on another VIP.
//
// validate() is the one rule book: the encoder refuses what it says is invalid (so an instance
// never sends what its peers would refuse), and the decoder refuses the same entries received.
// Thread contract: plain value types and pure functions.
#pragma once

#include <cstdint>
#include <variant>

#include "lib/lb/config.hpp"
#include "lib/lb/flow_table.hpp"
#include "lib/net/addr.hpp"

namespace sluice::sync {

// Idle times and time left are bounded by the longest flow timeout (--timeout-*, 86,400 s)
// and the longest persistence (lb::kMaxPersistMs).
inline constexpr uint32_t kMaxIdleMs = 86'400'000;
// A persistence decision's age: a signed 32-bit millisecond difference (24.8 days) is what the
// persistence table compares (lib/lb/persist_table.hpp).
inline constexpr uint32_t kMaxPinnedAgeMs = 0x7FFFFFFFu;

// A fullnat session as the client sees it: the data path's forward key.
struct SessionKey {
    lb::Proto proto = lb::Proto::tcp;
    net::IpAddr client;
    uint16_t client_port = 0;
    net::IpAddr vip;
    uint16_t vip_port = 0;
    friend bool operator==(const SessionKey&, const SessionKey&) = default;
};

// Session add or update: the whole session, so an update is just a newer add.
struct Session {
    SessionKey key;
    net::IpAddr backend;
    uint16_t backend_port = 0;  // the port packets go to (never 0 for a session: resolved)
    net::IpAddr snat;           // the source address Sluice gave the session towards the backend
    uint16_t snat_port = 0;     // >= lb::kMinSnatPort
    lb::FlowState state = lb::FlowState::tcp_syn;
    bool replied = false;      // the backend has answered (FlowRecord::replied)
    bool fin_client = false;   // TCP only
    bool fin_backend = false;  // TCP only
    uint32_t idle_ms = 0;      // since the session's last packet, when it was encoded
    friend bool operator==(const Session&, const Session&) = default;
};

struct SessionRemove {
    SessionKey key;
    friend bool operator==(const SessionRemove&, const SessionRemove&) = default;
};

// A client network of a VIP (lb::PersistKey, named by addresses).
struct PersistKey {
    lb::Proto proto = lb::Proto::tcp;
    net::IpAddr vip;
    uint16_t vip_port = 0;
    net::IpAddr net;         // masked: no bit set past prefix_len
    uint8_t prefix_len = 0;  // 1..32 or 1..128 (the VIP's persist-mask, 0 resolved to the width)
    friend bool operator==(const PersistKey&, const PersistKey&) = default;
};

// Persistence add or refresh.
struct Persist {
    PersistKey key;
    net::IpAddr backend;
    uint16_t backend_port = 0;   // as configured: 0 means the VIP's port
    uint32_t left_ms = 0;        // 1..lb::kMaxPersistMs: time the entry has left
    uint32_t pinned_age_ms = 0;  // since the backend was chosen (newer decisions win)
    friend bool operator==(const Persist&, const Persist&) = default;
};

struct PersistRemove {
    PersistKey key;
    friend bool operator==(const PersistRemove&, const PersistRemove&) = default;
};

// The variant's index + 1 is the entry kind on the wire (docs/sync-protocol.md).
using Entry = std::variant<Session, SessionRemove, Persist, PersistRemove>;

// nullptr if `e` may travel; else what is wrong with it, as a short phrase ("snat port below
// 1024"). Checks: one address family throughout, IPv4 addresses with nothing past their four
// bytes, no unspecified (all-zero) address but a persistence network, protocols tcp/udp, a
// session state that exists for its protocol (FIN flags on TCP only), the SNAT port range,
// prefix lengths and masked networks, and the time bounds above.
const char* validate(const Entry& e) noexcept;

}  // namespace sluice::sync
