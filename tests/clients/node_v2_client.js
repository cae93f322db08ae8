// The node `@influxdata/influxdb-client` (the InfluxDB 2.x client) against the relay:
// writes into `db` and `db/rp` in two precisions, then a write the backends refuse.
// Usage: node node_v2_client.js HOST PORT DB
const { InfluxDB, Point, HttpError } = require('@influxdata/influxdb-client');
const [host, port, db] = process.argv.slice(2);

async function main() {
  const influx = new InfluxDB({ url: `http://${host}:${port}`, token: 'any:thing', timeout: 10000 });
  const seconds = influx.getWriteApi('-', db, 's', { maxRetries: 0 });
  seconds.writeRecord('node2,k=a v=1 1600000000');
  seconds.writePoint(new Point('node2').tag('k', 'b').floatField('v', 2).timestamp(1600000001));
  await seconds.close();
  const ms = influx.getWriteApi('-', `${db}/autogen`, 'ms', { maxRetries: 0 });
  ms.writePoint(new Point('node2').tag('k', 'c').floatField('v', 3).timestamp(new Date(1600000002000)));
  await ms.close();

  const missing = influx.getWriteApi('-', `${db}_missing`, 's', { maxRetries: 0 });
  missing.writeRecord('node2 v=1 1');
  try {
    await missing.close();
    throw new Error('a missing database was accepted');
  } catch (e) {
    if (!(e instanceof HttpError) || e.statusCode !== 404) throw e;
  }
  console.log('@influxdata/influxdb-client: ok');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
