#!/usr/bin/python3
"""seed_corpus: turns the golden captures into dataplane_fuzz inputs.

    seed_corpus.py OUT_DIR CAPTURE...

Each capture is named like the golden inputs (in-port<P>.pcap or in-w<N>-port<P>.pcap), which
gives every frame its input port. Writes, in the input layout dataplane_fuzz.cpp documents:
  - one single-frame input per frame, the target Dataplane cycling over solo, pair[0], pair[1];
  - burst inputs: the captures of one case and worker count merged by timestamp and cut into
    bursts of 16 consecutive frames, so a flow's first packets and its replies share an input;
    some replayed, some replayed after a reload.
Files are named by the SHA-1 of their contents, as libFuzzer names its own, so reruns do not
duplicate them. Standard library only (classic pcap, either byte order, micro- or nanoseconds).
"""

import collections
import hashlib
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pcapfile import read_pcap  # noqa: E402

BURST = 16
MAX_LEN = 9216  # scripts/fuzz's -max_len


def write(out_dir, blob):
    blob = blob[:MAX_LEN]
    with open(os.path.join(out_dir, hashlib.sha1(blob).hexdigest()), "wb") as f:
        f.write(blob)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    groups = collections.defaultdict(list)  # (case dir, worker variant) -> [(ts, seq, port, frame)]
    singles = 0
    for file_idx, path in enumerate(sys.argv[2:]):
        m = re.fullmatch(r"in-(?:(w\d+)-)?port(\d+)\.pcap", os.path.basename(path))
        if not m:
            print(f"seed_corpus: {path}: not named in-[wN-]portP.pcap", file=sys.stderr)
            return 2
        port = int(m.group(2)) & 1
        for i, (ts, frame) in enumerate(read_pcap(path)):
            target = i % 3
            write(out_dir, bytes([port | target << 1, 1]) + frame)
            singles += 1
            groups[(os.path.dirname(path), m.group(1))].append((ts, file_idx, i, port, frame))
    bursts = 0
    for key, frames in groups.items():
        frames.sort(key=lambda f: (f[0], f[1], f[2]))
        for b, start in enumerate(range(0, len(frames), BURST)):
            target = b % 3
            again = (0, 6, 7)[b // 3 % 3]  # one pass; a replay; a replay after a reload
            blob = bytearray([again << 5 | 0x08 | target << 1, 1])
            for _, _, _, port, frame in frames[start:start + BURST]:
                blob += bytes([port]) + struct.pack(">H", len(frame)) + frame
            write(out_dir, bytes(blob))
            bursts += 1
    print(f"seed_corpus: {singles} single-frame and {bursts} burst inputs in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
