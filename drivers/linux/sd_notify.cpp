#include "drivers/linux/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

namespace sluice::linux_sd {

Status notify(std::string_view state) {
    const char* target = std::getenv("NOTIFY_SOCKET");
    if (!target || !*target) return {};
    const std::string_view path(target);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || path.size() >= sizeof(addr.sun_path))
        return make_error(fmt::format("NOTIFY_SOCKET={}: not a Unix socket path or @abstract name", path));
    std::memcpy(addr.sun_path, path.data(), path.size());
    // An abstract name starts with a NUL byte and has no terminator: its length is the address.
    if (path[0] == '@') addr.sun_path[0] = '\0';
    const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '/' ? 1 : 0));

    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return make_error(fmt::format("notify socket: {}", std::strerror(errno)));
    // MSG_NOSIGNAL: a manager that went away must not kill the load balancer with SIGPIPE.
    const ssize_t sent =
        ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr), len);
    const int err = errno;
    ::close(fd);
    if (sent < 0) return make_error(fmt::format("notify {}: {}", path, std::strerror(err)));
    if (static_cast<size_t>(sent) != state.size()) return make_error(fmt::format("notify {}: short write", path));
    return {};
}

std::string reloading_message() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    return fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec);
}

}  // namespace sluice::linux_sd
