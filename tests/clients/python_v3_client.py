"""The Python `influxdb3-python` client (the InfluxDB 3 client) against the relay: its
default write path (`/api/v2/write`, bucket = database) and the 3.x one
(`/api/v3/write_lp`, with `no_sync` and without `accept_partial`), as line protocol
and as points, and the error it raises for a bad line.
Usage: python_v3_client.py HOST PORT DB"""
import sys

from influxdb_client_3 import InfluxDBClient3, Point

host, port, db = sys.argv[1], sys.argv[2], sys.argv[3]
url = f"http://{host}:{port}"

default = InfluxDBClient3(host=url, token="unused", database=db)
version = default.get_server_version()
assert version and "influx-relay" in version, version
default.write(record="py3,k=a v=1 1600000000", write_precision="s")

v3 = InfluxDBClient3(host=url, token="unused", database=db, write_use_v2_api=False)
v3.write(record=Point("py3").tag("k", "b").field("v", 2.0).time(1600000001000, "ms"), write_precision="ms")

nosync = InfluxDBClient3(
    host=url, token="unused", database=db, write_use_v2_api=False, write_no_sync=True,
    write_accept_partial=False,
)
nosync.write(record="py3,k=c v=3 1600000002000000000")

try:
    v3.write(record="py3 broken", write_precision="s")
    raise AssertionError("a bad line was accepted")
except Exception as e:  # the client's InfluxDBError
    assert "partial write" in str(e) or "400" in str(e), repr(e)

print("influxdb3-python: ok")
