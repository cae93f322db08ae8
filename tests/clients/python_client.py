"""The Python `influxdb` client (5.3.x) against the relay: create a database, write
with several precisions and gzip, read back. Usage: python_client.py HOST PORT DB"""
import sys

from influxdb import InfluxDBClient

host, port, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
client = InfluxDBClient(host=host, port=port, database=db, timeout=10)
# ping() returns X-Influxdb-Version: a 1.x version, naming the relay.
version = client.ping()
assert version.startswith("1.") and "influx-relay" in version, version
client.create_database(db)
points = [
    {"measurement": "py", "tags": {"k": "a"}, "fields": {"value": 1.5, "n": 1}, "time": 1600000000},
    {"measurement": "py", "tags": {"k": "b"}, "fields": {"value": 2.5, "n": 2}, "time": 1600000001},
]
assert client.write_points(points, time_precision="s")
# No timestamp: the relay stamps it.
assert client.write_points([{"measurement": "py", "tags": {"k": "c"}, "fields": {"value": 3.5, "n": 3}}])
gz = InfluxDBClient(host=host, port=port, database=db, gzip=True)
assert gz.write_points([{"measurement": "py", "tags": {"k": "d"}, "fields": {"value": 4.5, "n": 4}, "time": 1600000002}], time_precision="s")
rows = list(client.query("SELECT value, k FROM py").get_points())
assert len(rows) == 4, rows
assert sorted(r["k"] for r in rows) == ["a", "b", "c", "d"], rows
print("python influxdb client: ok,", len(rows), "rows")
