"""Checks a screenshot is a real rendering: a PNG of the expected width
whose pixels are not one colour. Reads the compressed stream only (zlib in
C), so it stays fast on a tall page: a blank page filters to nearly all
zero bytes."""
import struct
import sys
import zlib

path, width = sys.argv[1], int(sys.argv[2])
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(path + ": not a PNG")
w, h = struct.unpack(">II", data[16:24])
if w != width or h < 400:
    sys.exit("%s: %dx%d, expected %d wide" % (path, w, h, width))
pos, idat = 8, []
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT":
        idat.append(data[pos + 8:pos + 8 + n])
    pos += 12 + n
raw = zlib.decompress(b"".join(idat))
nonzero = len(raw) - raw.count(0)
if nonzero < len(raw) // 50:
    sys.exit("%s: nearly blank (%d of %d bytes vary)" % (path, nonzero, len(raw)))
print("%s: %dx%d, %.1f%% of the filtered bytes vary" % (path, w, h, 100.0 * nonzero / len(raw)))
