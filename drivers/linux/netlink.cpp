#include "drivers/linux/netlink.hpp"

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/neighbour.h>
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

// Starts a request of `type` in `buf` (zeroed, at least 256 bytes): its header, then a
// Body, to which attributes are appended with put_attr.
template <typename Body>
Body* start(char* buf, uint16_t type, uint16_t flags) {
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    h->nlmsg_len = NLMSG_LENGTH(sizeof(Body));
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    h->nlmsg_seq = 1;
    return static_cast<Body*>(NLMSG_DATA(h));
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

namespace {

// RTM_NEWADDR or RTM_DELADDR of addr/prefix_len on ifname: 0 or the kernel's errno.
Expected<int> address_request(uint16_t type, const std::string& ifname, const net::IpAddr& addr, uint8_t prefix_len) {
    const unsigned index = if_nametoindex(ifname.c_str());
    if (index == 0) return make_error(fmt::format("interface {}: {}", ifname, std::strerror(errno)));
    alignas(nlmsghdr) char buf[256] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    auto* ifa = start<ifaddrmsg>(buf, type, type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    const bool v4 = addr.is_v4();
    ifa->ifa_family = v4 ? AF_INET : AF_INET6;
    ifa->ifa_prefixlen = prefix_len;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = index;
    ifa->ifa_flags = v4 ? 0 : IFA_F_NODAD;
    const size_t alen = v4 ? 4 : 16;
    put_attr(h, IFA_LOCAL, addr.bytes.data(), alen);
    put_attr(h, IFA_ADDRESS, addr.bytes.data(), alen);
    return transact(h);
}

}  // namespace

Status add_address(const std::string& ifname, const net::IpAddr& addr, uint8_t prefix_len) {
    auto err = address_request(RTM_NEWADDR, ifname, addr, prefix_len);
    if (!err) return make_error(err.error());
    if (*err != 0 && *err != EEXIST)
        return make_error(fmt::format("add {}/{} to {}: {}", net::to_string(addr), prefix_len, ifname, std::strerror(*err)));
    return {};
}

Status delete_address(const std::string& ifname, const net::IpAddr& addr, uint8_t prefix_len) {
    auto err = address_request(RTM_DELADDR, ifname, addr, prefix_len);
    if (!err) return make_error(err.error());
    if (*err != 0 && *err != EADDRNOTAVAIL && *err != ENOENT)
        return make_error(fmt::format("remove {}/{} from {}: {}", net::to_string(addr), prefix_len, ifname,
                                      std::strerror(*err)));
    return {};
}

namespace {

Expected<unsigned> index_of(const std::string& ifname) {
    const unsigned index = if_nametoindex(ifname.c_str());
    if (index == 0) return make_error(fmt::format("interface {}: {}", ifname, std::strerror(errno)));
    return index;
}

Status rule(uint16_t type, net::Family family, uint32_t mark, uint32_t table, uint32_t priority) {
    alignas(nlmsghdr) char buf[256] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    auto* r = start<fib_rule_hdr>(buf, type, (type == RTM_NEWRULE ? NLM_F_CREATE | NLM_F_EXCL : 0));
    r->family = family == net::Family::v4 ? AF_INET : AF_INET6;
    r->action = FR_ACT_TO_TBL;
    r->table = static_cast<uint8_t>(table < 256 ? table : unsigned{RT_TABLE_UNSPEC});
    put_attr(h, FRA_FWMARK, &mark, 4);
    put_attr(h, FRA_TABLE, &table, 4);
    put_attr(h, FRA_PRIORITY, &priority, 4);
    auto err = transact(h);
    if (!err) return make_error(err.error());
    if (*err != 0 && *err != EEXIST && *err != ENOENT)
        return make_error(fmt::format("{} fwmark {:#x} rule: {}", family == net::Family::v4 ? "IPv4" : "IPv6", mark,
                                      std::strerror(*err)));
    return {};
}

}  // namespace

Status add_route(const std::string& ifname, const net::IpAddr& dst, uint32_t table) {
    auto index = index_of(ifname);
    if (!index) return make_error(index.error());
    alignas(nlmsghdr) char buf[256] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    auto* rt = start<rtmsg>(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
    const bool v4 = dst.is_v4();
    rt->rtm_family = v4 ? AF_INET : AF_INET6;
    rt->rtm_dst_len = v4 ? 32 : 128;
    rt->rtm_table = static_cast<uint8_t>(table < 256 ? table : unsigned{RT_TABLE_UNSPEC});
    rt->rtm_protocol = RTPROT_STATIC;
    rt->rtm_scope = RT_SCOPE_LINK;
    rt->rtm_type = RTN_UNICAST;
    put_attr(h, RTA_DST, dst.bytes.data(), v4 ? 4 : 16);
    const uint32_t oif = *index;
    put_attr(h, RTA_OIF, &oif, 4);
    put_attr(h, RTA_TABLE, &table, 4);
    auto err = transact(h);
    if (!err) return make_error(err.error());
    if (*err != 0) return make_error(fmt::format("route {} dev {}: {}", net::to_string(dst), ifname, std::strerror(*err)));
    return {};
}

Status add_neighbor(const std::string& ifname, const net::IpAddr& addr, const net::Mac& mac) {
    auto index = index_of(ifname);
    if (!index) return make_error(index.error());
    alignas(nlmsghdr) char buf[256] = {};
    auto* h = reinterpret_cast<nlmsghdr*>(buf);
    auto* nd = start<ndmsg>(buf, RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
    const bool v4 = addr.is_v4();
    nd->ndm_family = v4 ? AF_INET : AF_INET6;
    nd->ndm_ifindex = static_cast<int>(*index);
    nd->ndm_state = NUD_PERMANENT;
    put_attr(h, NDA_DST, addr.bytes.data(), v4 ? 4 : 16);
    put_attr(h, NDA_LLADDR, mac.bytes.data(), 6);
    auto err = transact(h);
    if (!err) return make_error(err.error());
    if (*err != 0) return make_error(fmt::format("neighbour {} on {}: {}", net::to_string(addr), ifname, std::strerror(*err)));
    return {};
}

Status add_mark_rule(net::Family family, uint32_t mark, uint32_t table, uint32_t priority) {
    return rule(RTM_NEWRULE, family, mark, table, priority);
}

Status delete_mark_rule(net::Family family, uint32_t mark, uint32_t table, uint32_t priority) {
    return rule(RTM_DELRULE, family, mark, table, priority);
}

}  // namespace sluice::linux_nl
