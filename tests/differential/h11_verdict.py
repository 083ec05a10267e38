#!/usr/bin/env python3
"""The second opinion in the differential parser test: how h11, an
independent HTTP/1.1 implementation, reads each raw request file.

Usage: h11_verdict.py DIR
Prints one JSON object: {"h11": VERSION, "files": {NAME: VERDICT, ...}} for
every DIR/*.http, where VERDICT is

    {"requests": [REQUEST, ...],  # every request h11 read, in order
     "end": END,                  # how the byte stream ended (below)
     "error": STR or null,        # h11's reason when end == "refused"
     "unconsumed": N}             # bytes h11 left unread at the end

and REQUEST is {"method", "target", "version", "headers": [[name, value]],
"body", "complete"}; bytes are given as JSON strings decoded as latin-1
(one character per byte), header names lowercased as h11 normalises them.
"complete" is false for a request whose body had not ended when the input
did.

END is one of
- "clean": every byte belonged to a complete request;
- "incomplete": the input ended inside a request (head or body);
- "refused": h11 raised a protocol error;
- "closed": a request ended the connection (Connection: close, HTTP/1.0)
  with "unconsumed" bytes after it;
- "switched": a CONNECT or Upgrade request left the rest of the bytes to
  another protocol.

h11 plays the server and answers each request itself (an empty 200, or 405
to CONNECT so that no protocol switch is accepted), the way a real server
would, so that pipelined requests are read in turn. The input is fed in one
piece, without an EOF: a stream that ends inside a message is "incomplete",
not an error.
"""

import json
import os
import sys

try:
    import h11
except ImportError:
    sys.stderr.write(
        "h11_verdict.py: the Python package h11 is not installed for "
        f"{sys.executable} (.ci/run installs it: python3 -m pip install h11)\n"
    )
    sys.exit(3)


def text(b):
    return bytes(b).decode("latin-1")


def verdict(raw):
    conn = h11.Connection(our_role=h11.SERVER)
    conn.receive_data(raw)
    requests = []
    current = None
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as e:
            return finish(requests, "refused", str(e), len(raw))
        if isinstance(event, h11.Request):
            current = {
                "method": text(event.method),
                "target": text(event.target),
                "version": text(event.http_version),
                "headers": [[text(n), text(v)] for n, v in event.headers],
                "body": "",
                "complete": False,
            }
            requests.append(current)
        elif isinstance(event, h11.Data):
            current["body"] += text(event.data)
        elif isinstance(event, h11.EndOfMessage):
            current["complete"] = True
            status = 405 if current["method"] == "CONNECT" else 200
            conn.send(h11.Response(status_code=status, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            elif conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                left = len(conn.trailing_data[0])
                return finish(requests, "closed" if left else "clean", None, left)
        elif event is h11.NEED_DATA:
            left = len(conn.trailing_data[0])
            pending = left > 0 or (current is not None and not current["complete"])
            return finish(requests, "incomplete" if pending else "clean", None, left)
        elif event is h11.PAUSED:
            # Waiting on a protocol switch (CONNECT / Upgrade) the answer
            # above did not grant, or on a cycle that cannot restart.
            if conn.their_state is h11.MIGHT_SWITCH_PROTOCOL or conn.their_state is h11.SWITCHED_PROTOCOL:
                return finish(requests, "switched", None, len(conn.trailing_data[0]))
            return finish(requests, "closed", None, len(conn.trailing_data[0]))
        else:
            return finish(requests, "refused", f"unexpected event {event!r}", len(conn.trailing_data[0]))


def finish(requests, end, error, unconsumed):
    return {"requests": requests, "end": end, "error": error, "unconsumed": unconsumed}


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: h11_verdict.py DIR\n")
        sys.exit(2)
    folder = sys.argv[1]
    files = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".http"):
            with open(os.path.join(folder, name), "rb") as f:
                files[name] = verdict(f.read())
    json.dump({"h11": h11.__version__, "files": files}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
