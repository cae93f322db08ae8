// The node `influx` client's own flow, many times over, through the relay with its
// default ack ("any"): create a database, write, SHOW MEASUREMENTS, drop the
// measurement, see it gone, drop the database. Each step reads what the one before
// changed, so a read served by a backend still applying the change fails the run.
// Usage: node node_flow.js HOST PORT DB ROUNDS
const Influx = require('influx');
const [host, port, prefix, rounds] = process.argv.slice(2);

async function round(influx, i) {
  const db = `${prefix}_${i}`;
  await influx.createDatabase(db);
  const names = await influx.getDatabaseNames();
  if (!names.includes(db)) throw new Error(`round ${i}: database ${db} missing from ${names}`);
  await influx.writePoints(
    [{ measurement: 'flow', tags: { r: String(i) }, fields: { value: i }, timestamp: new Date(1600000000000 + i) }],
    { database: db },
  );
  let ms = await influx.getMeasurements(db);
  if (!ms.includes('flow')) throw new Error(`round ${i}: measurement missing after write: ${ms}`);
  const rows = await influx.query('SELECT value FROM flow', { database: db });
  if (rows.length !== 1 || rows[0].value !== i) throw new Error(`round ${i}: read ${JSON.stringify(rows)}`);
  await influx.dropMeasurement('flow', db);
  ms = await influx.getMeasurements(db);
  if (ms.includes('flow')) throw new Error(`round ${i}: measurement still listed after DROP: ${ms}`);
  await influx.dropDatabase(db);
  const after = await influx.getDatabaseNames();
  if (after.includes(db)) throw new Error(`round ${i}: database ${db} still listed after DROP`);
}

async function main() {
  const influx = new Influx.InfluxDB({ host, port: Number(port) });
  for (let i = 0; i < Number(rounds); i++) await round(influx, i);
  console.log('node influx flow: ok,', rounds, 'rounds');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
