"""pcapfile: classic pcap files for the test scripts (standard library only).

read_pcap(path)          -> [(ts_us, bytes)]; either byte order, micro- or nanosecond
                            timestamps, Ethernet only; a malformed file raises ValueError
write_pcap(path, records) writes [(ts_us, bytes)] as a little-endian microsecond Ethernet pcap,
                            snaplen 65535 (what sluice-replay reads and writes)

Scripts elsewhere under tests/ (and scripts/gen-golden) import it after putting this folder on
sys.path.
"""

import struct

_FORMATS = {0xA1B2C3D4: ("<", 1), 0xD4C3B2A1: (">", 1), 0xA1B23C4D: ("<", 1000), 0x4D3CB2A1: (">", 1000)}


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError("%s: not a pcap file (%d bytes)" % (path, len(data)))
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in _FORMATS:
        raise ValueError("%s: not a classic pcap file (magic %08x)" % (path, magic))
    endian, ns_div = _FORMATS[magic]
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError("%s: link type %d, expected Ethernet (1)" % (path, linktype))
    out, off = [], 24
    while off < len(data):
        if off + 16 > len(data):
            raise ValueError("%s: truncated record header at offset %d" % (path, off))
        sec, frac, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        if off + caplen > len(data):
            raise ValueError("%s: truncated packet at offset %d" % (path, off))
        out.append((sec * 1_000_000 + frac // ns_div, data[off:off + caplen]))
        off += caplen
    return out


def write_pcap(path, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, b in records:
            f.write(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(b), len(b)))
            f.write(b)
