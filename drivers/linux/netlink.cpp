#include "drivers/linux/netlink.hpp"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace sluice::linux_nl {

namespace {
struct Fd {
    int fd;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

void put_attr(nlmsghdr* h, uint16_t type, const void* data, size_t len) {
    auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(h) + NLMSG_ALIGN(h->nlmsg_len));
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

// Sends one request and waits for its acknowledgement: 0 or the kernel's errno.
Expected<int> transact(nlmsghdr* h) {
    Fd s{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)};
    if (s.fd < 0) return make_error(fmt::format("netlink socket: {}", std::strerror(errno)));
    timeval tv{2, 0};
    setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(s.fd, h, h->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
        return make_error(fmt::format("netlink send: {}", std::strerror(errno)));
    alignas(nlmsghdr) char reply[1024];
    const ssize_t n = ::recv(s.fd, reply, sizeof reply, 0);
    if (n < 0) return make_error(fmt::format("netlink receive: {}", std::strerror(errno)));
    auto* r = reinterpret_cast<nlmsghdr*>(reply);
    if (!NLMSG_OK(r, static_cast<unsigned>(n)) || r->nlmsg_type != NLMSG_ERROR)
        return make_error("netlink: unexpected answer");
    return -static_cast<nlmsgerr*>(NLMSG_DATA(r))->error;
}
}  // namespace

Status add_address(const std::string& ifname, const net::IpAddr& addr, uint8_t prefix_len) {
    const unsigned index = if_nametoindex(ifname.c_str());
    if (index == 0) return make_error(fmt::format("interface {}: {}", ifname, std::strerror(errno)));
    alignas(nlmsghdr) char buf[256] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    h->nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    h->nlmsg_type = RTM_NEWADDR;
    h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    h->nlmsg_seq = 1;
    auto* ifa = static_cast<ifaddrmsg*>(NLMSG_DATA(h));
    const bool v4 = addr.is_v4();
    ifa->ifa_family = v4 ? AF_INET : AF_INET6;
    ifa->ifa_prefixlen = prefix_len;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    ifa->ifa_flags = v4 ? 0 : IFA_F_NODAD;
    const size_t alen = v4 ? 4 : 16;
    put_attr(h, IFA_LOCAL, addr.bytes.data(), alen);
    put_attr(h, IFA_ADDRESS, addr.bytes.data(), alen);
    auto err = transact(h);
    if (!err) return make_error(err.error());
    if (*err != 0 && *err != EEXIST)
        return make_error(fmt::format("add {}/{} to {}: {}", net::to_string(addr), prefix_len, ifname, std::strerror(*err)));
    return {};
}

}  // namespace sluice::linux_nl
