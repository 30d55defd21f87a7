#!/usr/bin/env python3
"""An S3-compatible server for the media tests (moto's, in memory), on a free loopback port.

Prints the port on the first line of stdout once it accepts connections, then serves until
its standard input closes (so it never outlives the test that started it).
"""
import sys

from moto.server import ThreadedMotoServer

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server._server.server_port, flush=True)
sys.stdin.read()
server.stop()
