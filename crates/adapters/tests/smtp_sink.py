"""A real SMTP server for the email adapter's tests (needs `pip install aiosmtpd`).

Usage: smtp_sink.py PORT OUTFILE [REJECTED_ADDRESS]

Listens on 127.0.0.1:PORT and appends one JSON line per accepted message to
OUTFILE: {"rcpt": [...], "data": "<raw message>"}. RCPT TO the optional
REJECTED_ADDRESS is answered `550 5.1.1 no such user`. Runs until killed.
"""

import json
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outfile, rejected):
        self.outfile = outfile
        self.rejected = (rejected or "").lower()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() == self.rejected:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, bytes):
            data = data.decode("utf-8", errors="replace")
        with open(self.outfile, "a", encoding="utf-8") as out:
            out.write(json.dumps({"rcpt": envelope.rcpt_tos, "data": data}) + "\n")
            out.flush()
        return "250 Message accepted for delivery"


def main():
    port = int(sys.argv[1])
    outfile = sys.argv[2]
    rejected = sys.argv[3] if len(sys.argv) > 3 else None
    controller = Controller(Sink(outfile, rejected), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
