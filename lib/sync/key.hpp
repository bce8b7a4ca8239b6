// The tier's shared key: what authenticates (and encrypts) state-replication datagrams.
//
// Every instance of a tier reads the same 32-byte key from a file (docs/sync-protocol.md,
// "Key file"): either the 32 raw bytes, or 64 hex digits optionally followed by one newline.
// Anything else is refused with a message naming the file and the problem, and so is a file
// other users may read or write (the key is the tier's only secret), an all-zero key (an
// unfilled placeholder) and 32 hex digits (a 128-bit key written as hex by mistake).
// A Key wipes its bytes when destroyed (libsodium's sodium_memzero, which the compiler cannot
// optimise away).
// Thread contract: Key is a value type; the functions are reentrant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/common/expected.hpp"

namespace sluice::sync {

class Key {
public:
    static constexpr size_t kBytes = 32;
    Key() = default;
    explicit Key(const std::array<uint8_t, kBytes>& bytes) : bytes_(bytes) {}
    Key(const Key&) = default;
    Key& operator=(const Key&) = default;
    ~Key();
    const uint8_t* data() const noexcept { return bytes_.data(); }

private:
    std::array<uint8_t, kBytes> bytes_{};
};

// libsodium's one-time set-up (picks the fastest implementations for this CPU). Safe to call
// any number of times from any thread; fails only if libsodium cannot start.
Status crypto_init();

// The key in `content`, read from `source` (named in errors).
Expected<Key> parse_key(std::string_view content, std::string_view source);

// Checks a key file's permission bits: none for other users. Group bits are allowed (a service
// group may own the key).
Status check_key_mode(uint32_t mode, std::string_view source);

// Reads and checks the key file at `path`: a regular file, check_key_mode(), parse_key().
Expected<Key> load_key_file(const std::string& path);

}  // namespace sluice::sync
