// The input layout of sync_fuzz (tests/fuzz/sync_fuzz.cpp) and the fixed identities it runs
// with, shared with the seed generator (tests/fuzz/sync_seeds.cpp) so the two cannot drift.
//
// An input is a sequence of records, each one datagram for a fresh Receiver (instance 2 of a
// tier of 1, 2 and 3; the state lives for one input, so every crash reproduces from its file):
//   [ctl][adv][len_hi][len_lo][len bytes]
//   ctl bit 0  kSeal: the bytes are a header and a plaintext body; the target writes magic,
//              version and body length into the header (unless the bits below say not),
//              encrypts the body and appends the tag with the tier's key. Without it the
//              bytes are fed as they are (an outsider's datagram, or a sealed seed).
//       bit 1  kKeepLength: keep the header's body length as given (sealed over the true one)
//       bit 2  kKeepMagic: keep the magic and version as given
//       bit 3  kResync: first start a resync from the record's sender (bytes 8..11); with kSeal
//              and a bulk chunk, write the resync id it returned into the chunk
//       bit 4  kAcks: after the datagram, poll(), make every peer's ack and encode it
//       bit 5  kSeconds: adv counts seconds, not milliseconds
//   adv        how far the clock moves before the datagram
// At most kMaxRecords records; a record cut short by the end of the input is ignored.
#pragma once

#include <array>
#include <cstdint>

#include "lib/sync/key.hpp"

namespace sluice::sync::fuzz {

inline constexpr uint8_t kSeal = 0x01, kKeepLength = 0x02, kKeepMagic = 0x04, kResync = 0x08, kAcks = 0x10,
                         kSeconds = 0x20;
inline constexpr size_t kMaxRecords = 64;
inline constexpr size_t kRecordHeader = 4;

inline constexpr uint32_t kSelf = 2;
inline constexpr uint32_t kPeers[] = {1, 3};
inline constexpr uint64_t kT0 = 1'700'000'000'000;
inline constexpr uint64_t kSelfEpoch = kT0 << 20 | 2;
inline constexpr uint64_t kPeerEpoch = (kT0 - 1000) << 20 | 7;

inline Key key() {
    std::array<uint8_t, Key::kBytes> b{};
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(0xA5 ^ (i * 29));
    return Key(b);
}

}  // namespace sluice::sync::fuzz
