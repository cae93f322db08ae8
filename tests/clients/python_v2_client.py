"""The Python `influxdb-client` (the InfluxDB 2.x client) against the relay: health,
ping, synchronous writes into `db` and `db/rp` in several precisions, gzip, and the
errors it raises for a bad line and a missing database.
Usage: python_v2_client.py HOST PORT DB TOKEN"""
import sys

from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

host, port, db, token = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
url = f"http://{host}:{port}"

client = InfluxDBClient(url=url, token=token, org="-", timeout=10_000)
health = client.health()
assert health.status == "pass", health
assert client.ping(), "ping"

write = client.write_api(write_options=SYNCHRONOUS)
write.write(bucket=db, record="py2,k=a v=1 1600000000", write_precision=WritePrecision.S)
write.write(
    bucket=f"{db}/autogen",
    record=Point("py2").tag("k", "b").field("v", 2.0).time(1600000001000, WritePrecision.MS),
    write_precision=WritePrecision.MS,
)
# No timestamp: the relay stamps it.
write.write(bucket=db, record=Point("py2").tag("k", "c").field("v", 3.0))

gz = InfluxDBClient(url=url, token=token, org="-", enable_gzip=True, timeout=10_000)
gz.write_api(write_options=SYNCHRONOUS).write(
    bucket=db, record="py2,k=d v=4 1600000003000000", write_precision=WritePrecision.US
)

try:
    write.write(bucket=db, record="py2,k=e v=1 1\npy2 broken", write_precision=WritePrecision.S)
    raise AssertionError("a bad line was accepted")
except ApiException as e:
    assert e.status == 400 and "line 2" in e.message, (e.status, e.message)

try:
    write.write(bucket=db + "_missing", record="py2 v=1 1", write_precision=WritePrecision.S)
    raise AssertionError("a missing database was accepted")
except ApiException as e:
    assert e.status == 404 and "database not found" in e.message, (e.status, e.message)

bad = InfluxDBClient(url=url, token="wrong", org="-", timeout=10_000)
try:
    bad.write_api(write_options=SYNCHRONOUS).write(bucket=db, record="py2 v=1 1")
    raise AssertionError("a wrong token was accepted")
except ApiException as e:
    assert e.status == 401, (e.status, e.message)

print("influxdb-client: ok")
