// The key file: reading, permission check, and the two accepted formats.
// Thread contract: reentrant (sodium_init() is itself safe to call concurrently).
#include "lib/sync/key.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace sluice::sync {
namespace {

constexpr size_t kHexDigits = 2 * Key::kBytes;
// Read at most this much: enough to tell a too-long file from a valid one.
constexpr size_t kMaxRead = kHexDigits + 8;

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool all_hex(std::string_view s) noexcept {
    for (char c : s)
        if (hex_value(c) < 0) return false;
    return true;
}

std::string_view strip_newline(std::string_view s) noexcept {
    if (s.ends_with("\r\n")) return s.substr(0, s.size() - 2);
    if (s.ends_with('\n')) return s.substr(0, s.size() - 1);
    return s;
}

}  // namespace

Key::~Key() { sodium_memzero(bytes_.data(), bytes_.size()); }

Status crypto_init() {
    if (sodium_init() < 0) return make_error("libsodium failed to initialise");
    return {};
}

Expected<Key> parse_key(std::string_view content, std::string_view source) {
    constexpr std::string_view kExpected = "expected 32 raw bytes, or 64 hex digits and at most one newline";
    std::array<uint8_t, Key::kBytes> b{};
    const std::string_view text = strip_newline(content);
    if (content.size() == Key::kBytes) {
        // 32 hex digits is a 128-bit key written as text, not 256 random bits.
        if (all_hex(content))
            return make_error(fmt::format("key file {}: 32 hex digits, a 128-bit key ({})", source, kExpected));
        std::memcpy(b.data(), content.data(), Key::kBytes);
    } else if (text.size() == kHexDigits) {
        for (size_t i = 0; i < kHexDigits; ++i)
            if (hex_value(text[i]) < 0)
                return make_error(fmt::format("key file {}: bad character 0x{:02x} at byte {} ({})", source,
                                              static_cast<unsigned char>(text[i]), i, kExpected));
        for (size_t i = 0; i < Key::kBytes; ++i)
            b[i] = static_cast<uint8_t>(hex_value(text[2 * i]) << 4 | hex_value(text[2 * i + 1]));
    } else if (all_hex(text) && !text.empty()) {
        return make_error(fmt::format("key file {}: {} hex digits ({})", source, text.size(), kExpected));
    } else {
        return make_error(fmt::format("key file {}: {} bytes ({})", source, content.size(), kExpected));
    }
    Key key(b);
    const bool zero = sodium_is_zero(b.data(), b.size());
    sodium_memzero(b.data(), b.size());
    if (zero) return make_error(fmt::format("key file {}: the key is all zero (a placeholder, not a key)", source));
    return key;
}

Status check_key_mode(uint32_t mode, std::string_view source) {
    if (mode & 0007)
        return make_error(fmt::format("key file {}: other users may access it (mode {:04o}; chmod o-rwx it)", source,
                                      mode & 07777));
    return {};
}

Expected<Key> load_key_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return make_error(fmt::format("key file {}: {}", path, std::strerror(errno)));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return make_error(fmt::format("key file {}: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) return make_error(fmt::format("key file {}: not a regular file", path));
    if (auto s = check_key_mode(st.st_mode, path); !s) return Error{s.error()};
    char buf[kMaxRead + 1];
    size_t n = 0;
    while (n < sizeof buf) {
        const ssize_t r = ::read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return make_error(fmt::format("key file {}: {}", path, std::strerror(errno)));
        if (r == 0) break;
        n += static_cast<size_t>(r);
    }
    auto key = n > kMaxRead ? Expected<Key>(make_error(fmt::format(
                                  "key file {}: longer than {} bytes (expected 32 raw bytes, or 64 hex digits and at "
                                  "most one newline)",
                                  path, kMaxRead)))
                            : parse_key(std::string_view(buf, n), path);
    sodium_memzero(buf, sizeof buf);
    return key;
}

}  // namespace sluice::sync
