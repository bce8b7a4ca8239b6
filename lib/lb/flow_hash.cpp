#include "lib/lb/flow_hash.hpp"

#include <cerrno>
#include <cstdio>

#include <sys/random.h>

namespace sluice::lb {

bool HashKey::random(HashKey& out) noexcept {
    HashKey k;
    size_t got = 0;
    while (got < sizeof k.w) {
        const ssize_t n = getrandom(reinterpret_cast<uint8_t*>(k.w) + got, sizeof k.w - got, 0);
        if (n > 0) {
            got += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    if (got < sizeof k.w) {
        FILE* f = std::fopen("/dev/urandom", "rb");
        if (!f) return false;
        got = std::fread(k.w, 1, sizeof k.w, f);
        std::fclose(f);
        if (got != sizeof k.w) return false;
    }
    out = k;
    return true;
}

bool HashKey::from_hex(const char* hex, HashKey& out) noexcept {
    HashKey k;
    size_t n = 0;
    for (; hex[n]; ++n) {
        const char c = hex[n];
        unsigned v;
        if (c >= '0' && c <= '9') v = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f') v = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v = static_cast<unsigned>(c - 'A' + 10);
        else return false;
        if (n >= 128) return false;
        // Digit n is nibble n of the 64-byte key, most significant nibble of each byte first.
        reinterpret_cast<uint8_t*>(k.w)[n / 2] |= static_cast<uint8_t>(v << (n % 2 ? 0 : 4));
    }
    if (n == 0) return false;
    out = k;
    return true;
}

}  // namespace sluice::lb
