#!/usr/bin/env python3
"""generate.py: the configuration files too big to commit, written at test time.

    generate.py DIR     writes them into DIR/bad and DIR/good, to look at or run by hand

check_configs.py imports GENERATED and write_all() and writes these files into a temporary
directory on every run; they are then checked exactly like the committed tests/config/bad/*.conf
and tests/config/good/*.conf (same header, same checks, same pending- naming rule) and counted
with them. A file over MAX_COMMITTED bytes belongs here, not in tests/config/bad or good: each
entry is a name, the expected substring (None for a good file), the one-sentence description
that becomes the header's comment line, and a function returning the rest of the file.
"""
import collections
import pathlib
import sys

MAX_COMMITTED = 8 * 1024   # check_configs.py refuses committed files larger than this

LONG = 100 * 1024          # the "100 KB" of the long-line files

# The VIP and its two reachable backends most long-line files wrap their one long value in.
WEB_VIP = "vip = web,203.0.113.10:80/tcp,nat\n"
WEB_BACKENDS = "backend = web,198.51.100.11:8080\nbackend = web,198.51.100.12:8080\n"
WEB_NEIGHBORS = ("neighbor = 198.51.100.11,02:00:00:00:b1:11\n"
                 "neighbor = 198.51.100.12,02:00:00:00:b1:12\n")
WEB = WEB_VIP + WEB_BACKENDS + WEB_NEIGHBORS

Generated = collections.namedtuple("Generated", "dir name expect description body")


def backends_65536():
    lines = ["kernel-if = sl\n", "vip = a,203.0.113.10:80/tcp,nat\n", "vip = b,203.0.113.11:80/tcp,nat\n"]
    for vip, net in (("a", 0), ("b", 1)):
        lines += [f"backend={vip},10.{net}.{i >> 8}.{i & 255}\n" for i in range(32768)]
    return "".join(lines)


def vips(n):
    """n one-backend nat VIPs on ports 1..n of one address."""
    lines = ["neighbor = 198.51.100.11,02:00:00:00:b1:11\n"]
    for i in range(n):
        lines.append(f"vip=v{i},203.0.113.10:{i + 1}/tcp,nat\nbackend=v{i},198.51.100.11\n")
    return "".join(lines)


GENERATED = [
    Generated("bad", "279-backends-65536.conf",
              "--backend: 65536 backends, at most 65535 are supported",
              "65,536 backends in all, one more than Sluice's 65,535.",
              backends_65536),
    Generated("bad", "306-4097-services.conf", "VIPs, at most 4096",
              "4,097 VIPs, one more than the 4,096 VIP slots of a process (kMaxVipSlots).",
              lambda: vips(4097)),
    Generated("bad", "309-long-vip-name-message.conf", "bad VIP name",
              "A 100 KB VIP name: rejected, but the message quotes it whole (twice).",
              lambda: f"vip = {'w' * LONG},203.0.113.10:80/tcp,nat\n" + WEB_NEIGHBORS),
    Generated("bad", "310-long-line-no-equals-message.conf", "expected `name = value`",
              "A 100 KB line without `=`: rejected, but the message quotes the whole line.",
              lambda: WEB + "x" * LONG + "\n"),
    Generated("bad", "311-long-option-name-message.conf", "unknown option",
              "A 100 KB option name: rejected, but the message quotes it whole.",
              lambda: WEB + "o" * LONG + " = 1\n"),
    Generated("bad", "312-long-address-message.conf", "bad address",
              "A 100 KB backend address: rejected, but the message quotes it whole (twice).",
              lambda: WEB_VIP + "backend = web,198.51.100.11:8080\n"
                      + f"backend = web,{'1' * LONG}\n" + WEB_NEIGHBORS),
    Generated("bad", "313-long-number-message.conf", "value out of range",
              "A 100 KB number: rejected, but the message quotes it whole (twice).",
              lambda: WEB + f"burst = {'9' * LONG}\n"),
    Generated("bad", "314-long-expected-body.conf", "a probe reads at most",
              "An expected http-body of 100 KB: longer than the 16 KB of response a probe reads, "
              "so every backend fails its check; accepted today.",
              lambda: f"vip = web,203.0.113.10:80/tcp,nat,check=http,http-body={'b' * LONG}\n"
                      + WEB_BACKENDS + WEB_NEIGHBORS),
    Generated("bad", "315-long-probe-path.conf", "http-path is",
              "An http-path of 100 KB: no HTTP server takes such a request line; accepted today.",
              lambda: f"vip = web,203.0.113.10:80/tcp,nat,check=http,http-path=/{'p' * LONG}\n"
                      + WEB_BACKENDS + WEB_NEIGHBORS),
    Generated("good", "4096-vips.conf", None,
              "4096 VIPs: the most one process holds (kMaxVipSlots).",
              lambda: vips(4096)),
    Generated("good", "long-comment.conf", None,
              "A 100 KB comment line is only a comment.",
              lambda: f"# {'c' * LONG}\n" + WEB),
]


def content(g):
    """The whole file: the header committed files carry, then the body."""
    header = (f"# expect: {g.expect}\n" if g.expect is not None else "") + f"# {g.description}\n"
    return (header + g.body()).encode()


def write_all(root):
    """Writes every generated file under root/bad and root/good; returns {"bad": [paths], "good": [paths]}."""
    root = pathlib.Path(root)
    written = {"bad": [], "good": []}
    for g in GENERATED:
        if (g.dir == "bad") != (g.expect is not None):
            raise ValueError(f"{g.dir}/{g.name}: a bad file needs an expected substring, a good one none")
        path = root / g.dir / g.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(g))
        written[g.dir].append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    for paths in write_all(sys.argv[1]).values():
        for p in paths:
            print(p)
