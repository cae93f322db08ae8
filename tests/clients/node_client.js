// The node `influx` client (5.x) against the relay: create a database, write, read
// back. Usage: node node_client.js HOST PORT DB
const Influx = require('influx');
const [host, port, db] = process.argv.slice(2);

async function main() {
  const influx = new Influx.InfluxDB({ host, port: Number(port), database: db });
  // ping() reports X-Influxdb-Version: a 1.x version, naming the relay.
  const [pong] = await influx.ping(5000);
  if (!pong.online || !pong.version.startsWith('1.') || !pong.version.includes('influx-relay')) {
    throw new Error(`ping: ${JSON.stringify(pong)}`);
  }
  await influx.createDatabase(db);
  await influx.writePoints([
    { measurement: 'node', tags: { k: 'a' }, fields: { value: 1 }, timestamp: new Date(1600000000000) },
    { measurement: 'node', tags: { k: 'b' }, fields: { value: 2 }, timestamp: new Date(1600000001000) },
  ]);
  await influx.writePoints([{ measurement: 'node', tags: { k: 'c' }, fields: { value: 3 } }]);
  const rows = await influx.query('SELECT value, k FROM node');
  if (rows.length !== 3) throw new Error(`expected 3 rows, got ${JSON.stringify(rows)}`);
  const names = await influx.getDatabaseNames();
  if (!names.includes(db)) throw new Error(`database ${db} missing from ${names}`);
  console.log('node influx client: ok,', rows.length, 'rows');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
