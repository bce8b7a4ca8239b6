// Tests for apps/sluicectl/views: the key=value tokenizer (quoted values with spaces and
// unescaped quotes), list and stats parsing, the VIP filter, JSON (escaping, numbers, UTF-8),
// rates (including a counter reset and a backend added between samples), the aligned table
// and a top frame. Answers are written the way ControlPlane::list()/stats() write them.
#include "apps/sluicectl/views.hpp"

#include <catch2/catch.hpp>

#include <string>

namespace v = sluice::ctlview;

namespace {

const std::string kList =
    "vip web 203.0.113.10:80/tcp nat on-down=reschedule check=http packets=12 bytes=3400 new_flows=3 "
    "active_flows=1 inactive_flows=0 table=65537 announced=yes announce_reason=\"2 of 2 backends up\"\n"
    "  backend 198.51.100.11:80 state=up admin=up health=up weight=1 mac=02:be:00:00:04:21 packets=8 bytes=2400 "
    "new_flows=2 active_flows=1 inactive_flows=0 handshake_failures=0 last_check=\"HTTP 200 \"OK\" in 3 ms\" "
    "ok_streak=4 fail_streak=0\n"
    "  backend [2001:db8::2]:8080 state=down admin=up health=down weight=20 mac=unresolved packets=4 bytes=1000 "
    "new_flows=1 active_flows=0 inactive_flows=0 handshake_failures=7 last_change=\"passive: 7 failed TCP "
    "handshakes \\ tab\there\"\n"
    "vip dns 203.0.113.10:53/udp nat on-down=drop check=none packets=0 bytes=0 new_flows=0 active_flows=0 "
    "inactive_flows=0 table=251 announced=no announce_reason=\"no backend is up\"\n";

const std::string kStats =
    "rx=100 tx=90 forwarded=60 replies=30 drops=10\n"
    "flows worker=0 ipv4=12/4096 ipv6=0/4096\n"
    "flows worker=1 ipv4=3/4096 ipv6=1/4096\n"
    "drop no_vip=7\n"
    "drop bad_checksum=3\n";

}  // namespace

TEST_CASE("tokenize: leading words, then fields; quoted values keep spaces", "[sluicectl]") {
    auto t = v::tokenize("vip web 203.0.113.10:80/tcp nat packets=12 reason=\"a b  c\" x=");
    REQUIRE(t.words == std::vector<std::string>{"vip", "web", "203.0.113.10:80/tcp", "nat"});
    REQUIRE(t.fields.size() == 3);
    CHECK(t.fields[0].key == "packets");
    CHECK(t.fields[0].value == "12");
    CHECK_FALSE(t.fields[0].quoted);
    CHECK(t.fields[1].value == "a b  c");
    CHECK(t.fields[1].quoted);
    CHECK(t.fields[2].key == "x");
    CHECK(t.fields[2].value.empty());
}

TEST_CASE("tokenize: an unescaped quote inside a quoted value does not end it", "[sluicectl]") {
    // The server writes the detail as is: a quote ends the value only before `key=` or the end.
    auto t = v::tokenize("  backend 1.2.3.4:80 last_check=\"said \"no\" twice\" ok_streak=2 r=\"ends \"here\"");
    REQUIRE(t.fields.size() == 3);
    CHECK(t.fields[0].value == "said \"no\" twice");
    CHECK(t.fields[1].key == "ok_streak");
    CHECK(t.fields[1].value == "2");
    CHECK(t.fields[2].value == "ends \"here");
}

TEST_CASE("tokenize: an unterminated quote takes the rest of the line; format_line round-trips", "[sluicectl]") {
    auto t = v::tokenize("drop a=1 why=\"no end here b=2");
    REQUIRE(t.fields.size() == 2);
    CHECK(t.fields[1].value == "no end here b=2");
    const std::string line = "vip web 1.2.3.4:80/tcp nat packets=1 announce_reason=\"x y\"";
    CHECK(v::format_line(v::tokenize(line)) == line);
}

TEST_CASE("is_integer: JSON integers only, 64 bits", "[sluicectl]") {
    CHECK(v::is_integer("0"));
    CHECK(v::is_integer("18446744073709551615"));
    CHECK_FALSE(v::is_integer("18446744073709551616"));
    CHECK_FALSE(v::is_integer("007"));
    CHECK_FALSE(v::is_integer("-1"));
    CHECK_FALSE(v::is_integer("1.5"));
    CHECK_FALSE(v::is_integer(""));
    CHECK_FALSE(v::is_integer("12/4096"));
}

TEST_CASE("parse_list: VIPs with their leading words, fields and backends", "[sluicectl]") {
    auto l = v::parse_list(kList);
    REQUIRE(l);
    REQUIRE(l->size() == 2);
    const auto& web = (*l)[0];
    CHECK(web.name == "web");
    CHECK(web.address == "203.0.113.10:80");
    CHECK(web.proto == "tcp");
    CHECK(web.mode == "nat");
    CHECK(v::find_u64(web.fields, "table") == 65537u);
    CHECK(*v::find(web.fields, "announce_reason") == "2 of 2 backends up");
    REQUIRE(web.backends.size() == 2);
    CHECK(web.backends[1].address == "[2001:db8::2]:8080");
    CHECK(*v::find(web.backends[0].fields, "last_check") == "HTTP 200 \"OK\" in 3 ms");
    CHECK(*v::find(web.backends[1].fields, "last_change") == "passive: 7 failed TCP handshakes \\ tab\there");
    CHECK((*l)[1].backends.empty());
    // The plain text view gives the answer back byte for byte.
    CHECK(v::list_text(*l) == kList);
}

TEST_CASE("parse_list: unknown lines are skipped, a backend before any VIP is an error", "[sluicectl]") {
    auto l = v::parse_list("vip a 1.2.3.4:1/udp dsr packets=1\n  persist 10.0.0.0/24 left=3\nsomething new\n");
    REQUIRE(l);
    REQUIRE(l->size() == 1);
    CHECK((*l)[0].backends.empty());
    CHECK_FALSE(v::parse_list("  backend 1.2.3.4:80 state=up\n"));
    CHECK_FALSE(v::parse_list("vip lonely\n"));
    auto empty = v::parse_list("");
    REQUIRE(empty);
    CHECK(empty->empty());
}

TEST_CASE("filter_list: one VIP, or an error naming those that exist", "[sluicectl]") {
    auto l = v::parse_list(kList);
    REQUIRE(l);
    auto one = v::filter_list(*l, "dns");
    REQUIRE(one);
    REQUIRE(one->size() == 1);
    CHECK(v::list_text(*one) == kList.substr(kList.find("vip dns")));
    auto none = v::filter_list(*l, "nope");
    REQUIRE_FALSE(none);
    CHECK(none.error() == "no VIP named 'nope' (VIPs: web, dns)");
    CHECK(v::filter_list({}, "web").error() == "no VIP named 'web' (no VIP is configured)");
}

TEST_CASE("json_string: quotes, backslashes, control characters, invalid UTF-8", "[sluicectl]") {
    CHECK(v::json_string("plain") == "\"plain\"");
    CHECK(v::json_string("say \"hi\"\\") == R"("say \"hi\"\\")");
    CHECK(v::json_string("a\tb\nc\x01\x7f") == R"("a\tb\nc\u0001\u007f")");
    CHECK(v::json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
    CHECK(v::json_string("\x80x\xc3") == R"("\ufffdx\ufffd")");
    CHECK(v::json_string("\xc0\xaf") == R"("\ufffd\ufffd")");
    CHECK(v::json_string("\xed\xa0\x80") == R"("\ufffd\ufffd\ufffd")");
}

TEST_CASE("list_json: names, numbers as numbers, quoted values as strings, backends", "[sluicectl]") {
    auto l = v::parse_list(
        "vip web 203.0.113.10:80/tcp nat packets=12 check=http code=\"200\" announce_reason=\"say \"hi\"\"\n"
        "  backend 198.51.100.11:80 state=up weight=1 mac=02:be:00:00:04:21 last_change=\"a\\b\tc\"\n");
    REQUIRE(l);
    CHECK(v::list_json(*l) ==
          "[\n  {\"name\":\"web\",\"address\":\"203.0.113.10:80\",\"proto\":\"tcp\",\"mode\":\"nat\",\"packets\":12,"
          "\"check\":\"http\",\"code\":\"200\",\"announce_reason\":\"say \\\"hi\\\"\",\"backends\":[\n"
          "    {\"address\":\"198.51.100.11:80\",\"state\":\"up\",\"weight\":1,\"mac\":\"02:be:00:00:04:21\","
          "\"last_change\":\"a\\\\b\\tc\"}\n  ]}\n]\n");
    CHECK(v::list_json({}) == "[]\n");
}

TEST_CASE("parse_stats and stats_json: counters, flows per worker, drops", "[sluicectl]") {
    auto s = v::parse_stats(kStats);
    REQUIRE(s);
    CHECK(v::find_u64(s->counters, "drops") == 10u);
    REQUIRE(s->flows.size() == 2);
    CHECK(*v::find(s->flows[1], "ipv6") == "1/4096");
    REQUIRE(s->drops.size() == 2);
    CHECK(v::stats_text(*s) == kStats);
    CHECK(v::stats_json(*s) ==
          "{\"counters\":{\"rx\":100,\"tx\":90,\"forwarded\":60,\"replies\":30,\"drops\":10},\n"
          " \"flows\":[{\"worker\":0,\"ipv4\":{\"flows\":12,\"capacity\":4096},\"ipv6\":{\"flows\":0,\"capacity\":4096}},"
          "{\"worker\":1,\"ipv4\":{\"flows\":3,\"capacity\":4096},\"ipv6\":{\"flows\":1,\"capacity\":4096}}],\n"
          " \"drops\":{\"no_vip\":7,\"bad_checksum\":3}}\n");
    CHECK_FALSE(v::parse_stats(""));
}

TEST_CASE("stats_json: the other lines (replication's) grouped by kind, nothing dropped", "[sluicectl]") {
    auto s = v::parse_stats(
        "rx=5 tx=5 drops=0\n"
        "sync instance=1 pending=0 walks=0 lag_p50_ms=0 lag_p99_ms=1\n"
        "sync_peer id=2 heard=yes resync=done highest=40 missing=0 lag_ms=0 rtt_ms=1\n"
        "sync_peer id=3 heard=no resync=unanswered highest=0 missing=0 lag_ms=0 rtt_ms=0\n"
        "sync_counters sent=40 bad_tag=1\n"
        "flows extra n=1\n"
        "novel thing\n");
    REQUIRE(s);
    REQUIRE(s->other.size() == 6);
    CHECK(v::stats_json(*s) ==
          "{\"counters\":{\"rx\":5,\"tx\":5,\"drops\":0},\n \"flows\":[],\n \"drops\":{},\n"
          " \"sync\":[{\"instance\":1,\"pending\":0,\"walks\":0,\"lag_p50_ms\":0,\"lag_p99_ms\":1}],\n"
          " \"sync_peer\":[{\"id\":2,\"heard\":\"yes\",\"resync\":\"done\",\"highest\":40,\"missing\":0,"
          "\"lag_ms\":0,\"rtt_ms\":1},{\"id\":3,\"heard\":\"no\",\"resync\":\"unanswered\",\"highest\":0,"
          "\"missing\":0,\"lag_ms\":0,\"rtt_ms\":0}],\n"
          " \"sync_counters\":[{\"sent\":40,\"bad_tag\":1}],\n"
          " \"flows_lines\":[{\"n\":1,\"words\":[\"extra\"]}],\n"
          " \"novel\":[{\"words\":[\"thing\"]}]}\n");
}

TEST_CASE("list_rates: per-second counters, gauges as they are, resets and newcomers from zero", "[sluicectl]") {
    auto before = v::parse_list(
        "vip web 1.2.3.4:80/tcp nat packets=100 bytes=1000 new_flows=10 active_flows=5 inactive_flows=1\n"
        "  backend 10.0.0.1:80 state=up weight=1 packets=100 bytes=1000 new_flows=10 active_flows=5 "
        "inactive_flows=1 handshake_failures=3\n");
    auto after = v::parse_list(
        "vip web 1.2.3.4:80/tcp nat packets=300 bytes=500 new_flows=15 active_flows=7 inactive_flows=2\n"
        "  backend 10.0.0.1:80 state=up weight=1 packets=250 bytes=400 new_flows=14 active_flows=6 "
        "inactive_flows=2 handshake_failures=4\n"
        "  backend 10.0.0.2:80 state=up weight=1 packets=50 bytes=100 new_flows=1 active_flows=1 inactive_flows=0 "
        "handshake_failures=0\n");
    REQUIRE(before);
    REQUIRE(after);
    auto r = v::list_rates(*before, *after, 2.0);
    REQUIRE(r.size() == 1);
    CHECK(v::list_text(r) ==
          "vip web 1.2.3.4:80/tcp nat packets_per_s=100 bytes_per_s=250 new_flows_per_s=2.5 active_flows=7 "
          "inactive_flows=2\n"
          "  backend 10.0.0.1:80 state=up weight=1 packets_per_s=75 bytes_per_s=200 new_flows_per_s=2 "
          "active_flows=6 inactive_flows=2 handshake_failures=4\n"
          "  backend 10.0.0.2:80 state=up weight=1 packets_per_s=25 bytes_per_s=50 new_flows_per_s=0.5 "
          "active_flows=1 inactive_flows=0 handshake_failures=0\n");
    // Rates are JSON numbers even with a fraction.
    CHECK(v::list_json(r).find("\"new_flows_per_s\":2.5,") != std::string::npos);
}

TEST_CASE("stats_rates: every counter and drop reason per second, flows as they are", "[sluicectl]") {
    auto a = v::parse_stats("rx=100 tx=100 drops=0\nflows worker=0 ipv4=1/8 ipv6=0/8\n");
    auto b = v::parse_stats("rx=400 tx=250 drops=6\nflows worker=0 ipv4=3/8 ipv6=0/8\ndrop no_vip=6\n");
    REQUIRE(a);
    REQUIRE(b);
    auto r = v::stats_rates(*a, *b, 3.0);
    CHECK(v::stats_text(r) == "rx_per_s=100 tx_per_s=50 drops_per_s=2\nflows worker=0 ipv4=3/8 ipv6=0/8\n"
                              "drop no_vip=2\n");
    CHECK(v::stats_json(r, 3.0).starts_with("{\"interval_s\":3,\n \"counters\":{\"rx_per_s\":100,"));
}

TEST_CASE("render_table: columns aligned, numbers to the right, no trailing spaces", "[sluicectl]") {
    CHECK(v::render_table({{"Name", "N", "Note"}, {"a", "1", "x"}, {"longer", "100", ""}}) ==
          "Name      N  Note\n"
          "a         1  x\n"
          "longer  100\n");
}

TEST_CASE("list_table: an ipvsadm-like view, announced only where reported", "[sluicectl]") {
    auto l = v::parse_list(kList);
    REQUIRE(l);
    CHECK(v::list_table(*l) ==
          "VIP / backend                State   Weight  Active  Inactive  Packets  Bytes  NewFlows  Announced\n"
          "web 203.0.113.10:80/tcp nat  1/2 up               1         0       12   3400         3  yes\n"
          "  -> 198.51.100.11:80        up           1       1         0        8   2400         2\n"
          "  -> [2001:db8::2]:8080      down        20       0         0        4   1000         1\n"
          "dns 203.0.113.10:53/udp nat  0/0 up               0         0        0      0         0  no\n"
          "Packets, Bytes: a VIP counts its clients' packets, a nat or fullnat backend also its replies\n");
    auto plain = v::parse_list("vip a 1.2.3.4:1/udp dsr packets=5\n");
    REQUIRE(plain);
    const std::string t = v::list_table(*plain);
    CHECK(t.find("Announced") == std::string::npos);
    CHECK(t.find("replies") == std::string::npos);  // dsr: replies bypass Sluice, the counts agree
    CHECK(t.find("  5  ") != std::string::npos);  // a missing column shows as "-"
    CHECK(t.find(" - ") != std::string::npos);
}

TEST_CASE("top_frame: rx/tx/drops per second, flows held, the rate table", "[sluicectl]") {
    auto a = v::parse_stats("rx=100 tx=100 drops=0\nflows worker=0 ipv4=1/8 ipv6=0/8\n");
    auto b = v::parse_stats("rx=1600 tx=1100 drops=2\nflows worker=0 ipv4=3/8 ipv6=1/8\ndrop no_vip=2\n");
    auto l1 = v::parse_list("vip web 1.2.3.4:80/tcp nat packets=0 bytes=0 new_flows=0 active_flows=0 inactive_flows=0\n"
                            "  backend 10.0.0.1:80 state=up weight=2 packets=0 bytes=0 new_flows=0 active_flows=0 "
                            "inactive_flows=0\n");
    auto l2 = v::parse_list("vip web 1.2.3.4:80/tcp nat packets=3000 bytes=4000000 new_flows=1 active_flows=3 "
                            "inactive_flows=1\n"
                            "  backend 10.0.0.1:80 state=up weight=2 packets=3000 bytes=4000000 new_flows=1 "
                            "active_flows=3 inactive_flows=1\n");
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(l1);
    REQUIRE(l2);
    const std::string f = v::top_frame(v::stats_rates(*a, *b, 2.0), v::list_rates(*l1, *l2, 2.0), 2.0);
    CHECK(f ==
          "sluice top (every 2 s)  rx 750.0 pps  tx 500.0 pps  drops 1.0/s  flows 4 (ipv4 3, ipv6 1)\n"
          "drops: no_vip=1/s\n"
          "\n"
          "VIP / backend           State   Weight  Active  Inactive  Pkts/s  Bytes/s  NewFlows/s\n"
          "web 1.2.3.4:80/tcp nat  1/1 up               3         1    1500  2000000         0.5\n"
          "  -> 10.0.0.1:80        up           2       3         1    1500  2000000         0.5\n"
          "Pkts/s, Bytes/s: a VIP counts its clients' packets, a nat or fullnat backend also its replies\n");
}

TEST_CASE("stats: lines of kinds this client does not know are kept and printed as received", "[sluicectl]") {
    auto s = v::parse_stats(kStats + "sync_peer id=2 heard=yes lag_ms=3\n");
    REQUIRE(s);
    REQUIRE(s->other == std::vector<std::string>{"sync_peer id=2 heard=yes lag_ms=3"});
    CHECK(v::stats_text(*s) == kStats + "sync_peer id=2 heard=yes lag_ms=3\n");
    CHECK(v::stats_table(*s).ends_with("bad_checksum        3\n\nsync_peer id=2 heard=yes lag_ms=3\n"));
    CHECK(v::stats_rates(*s, *s, 1.0).other == s->other);
}

TEST_CASE("stats_table: counters in column pairs, workers' flow tables, drops", "[sluicectl]") {
    auto s = v::parse_stats(kStats);
    REQUIRE(s);
    CHECK(v::stats_table(*s) ==
          "Counter  Total  Counter    Total  Counter  Total\n"
          "rx         100  forwarded     60  drops       10\n"
          "tx          90  replies       30\n"
          "\n"
          "Worker  IPv4 flows  IPv4 capacity  IPv6 flows  IPv6 capacity\n"
          "0               12           4096           0           4096\n"
          "1                3           4096           1           4096\n"
          "\n"
          "Drop reason   Packets\n"
          "no_vip              7\n"
          "bad_checksum        3\n");
    auto a = v::parse_stats("rx=100 tx=100 drops=0\nflows worker=0 ipv4=1/8 ipv6=0/8\n");
    auto b = v::parse_stats("rx=1600 tx=1100 drops=0\nflows worker=0 ipv4=3/8 ipv6=1/8\n");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(v::stats_table(v::stats_rates(*a, *b, 2.0)) ==
          "Counter  Per second  Counter  Per second  Counter  Per second\n"
          "rx            750.0  tx            500.0  drops           0.0\n"
          "\n"
          "Worker  IPv4 flows  IPv4 capacity  IPv6 flows  IPv6 capacity\n"
          "0                3              8           1              8\n"
          "\n"
          "No drops.\n");
}
