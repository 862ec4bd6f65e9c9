"""A DC-09 alarm panel for vakt's tests, built on the `siadc09` package (an
independent implementation of SIA DC-09): it encodes a frame, sends it over TCP or
UDP, and prints the receiver's answer as siadc09 decodes it, one JSON object per
frame sent.

  python dc09_peer.py --port 9000 --account 1234 [--key HEX] [--udp]
      --frame TOKEN:SEQ:DATA [--frame ...] [--time-offset SECS] [--wait SECS]
      [--raw HEX]

DATA is the event without the account (`1101 01 015` for ADM-CID, `NFA129` for
SIA-DCS, empty for NULL). --raw sends bytes as given (hex) instead, for frames no
panel would send.
"""
import argparse
import datetime
import json
import socket
import sys

from siadc09 import message, account
from siadc09.xdata import Data


def encode(acct, token, seq, data, offset):
    ts = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(seconds=offset)
    if token == "NULL":
        m = message.NullMessage(acct, timestamp=ts, seqno=seq)
    else:
        content = ("#%X|%s" % (acct.acct, data)).encode("ascii")
        m = message.EventMessage(acct, config={"idtoken": token, "seqno": seq, "data": Data(content=content), "timestamp": ts})
    return m.encode(seq=seq, timestamp=ts)


def answer(raw, acct):
    if raw is None:
        return {"answer": None}
    keys = {None: acct.key} if acct.key else None
    try:
        a = message.parse_frame(raw, keys)
    except Exception as e:  # the receiver's answer did not parse: the test fails on it
        return {"answer": "unparsable", "error": str(e), "raw": raw.decode("latin-1")}
    return {
        "answer": a.idtoken,
        "seq": a.seq,
        "account": "%X" % a.account.acct,
        "receiver": None if a.account.rcvr is None else "%X" % a.account.rcvr,
        "line": None if a.account.pref is None else "%X" % a.account.pref,
        "encrypted": a.encrypted,
        "timestamp": a.timestamp.isoformat() if a.timestamp else None,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--source", help="the local address to send from")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--account", default="1234")
    p.add_argument("--receiver")
    p.add_argument("--line")
    p.add_argument("--key")
    p.add_argument("--udp", action="store_true")
    p.add_argument("--frame", action="append", default=[])
    p.add_argument("--raw", action="append", default=[])
    p.add_argument("--time-offset", type=int, default=0)
    p.add_argument("--wait", type=float, default=8.0)
    args = p.parse_args()
    acct = account.Account(
        acct=int(args.account, 16),
        pref=int(args.line, 16) if args.line else None,
        rcvr=int(args.receiver, 16) if args.receiver else None,
        key=args.key,
    )
    frames = []
    for f in args.frame:
        token, seq, data = f.split(":", 2)
        frames.append(encode(acct, token, int(seq), data, args.time_offset))
    frames += [bytes.fromhex(r) for r in args.raw]
    if args.udp:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if args.source:
            s.bind((args.source, 0))
        s.settimeout(args.wait)
        for f in frames:
            s.sendto(f, (args.host, args.port))
            try:
                raw, _ = s.recvfrom(65536)
            except socket.timeout:
                raw = None
            print(json.dumps(answer(raw, acct)), flush=True)
        return
    s = socket.create_connection((args.host, args.port), timeout=args.wait, source_address=(args.source, 0) if args.source else None)
    buf = b""
    for f in frames:
        s.sendall(f)
        raw = None
        try:
            while b"\r" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except socket.timeout:
            pass
        if b"\r" in buf:
            end = buf.index(b"\r") + 1
            start = buf.find(b"\n")
            raw, buf = buf[max(start, 0):end], buf[end:]
        print(json.dumps(answer(raw, acct)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
