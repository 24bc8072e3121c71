// Benchmark helper for bench/revenue: the original generator's write path
// with the original's own client, node-postgres (`pg`, as
// generateSandboxRevenue.js used it): BEGIN, DELETE of the window, one
// `await client.query(text, values)` per row, COMMIT.
//   node revenue_insert_node.js URL PUBLISHER FROM TO < rows.tsv
// rows.tsv: placement_id, adapter_id, impressions, clicks, revenue,
// event_date, tab-separated. Prints the row count.
'use strict';
const path = require('node:path');
const { Client } = require(path.join(__dirname, '../tests/peers/node_modules/pg'));

async function main() {
  const [url, publisher, from, to] = process.argv.slice(2);
  const text = require('node:fs').readFileSync(0, 'utf8');
  const rows = text.split('\n').filter(Boolean).map((l) => l.split('\t'));
  const client = new Client({ connectionString: url });
  await client.connect();
  await client.query('BEGIN');
  await client.query(
    'DELETE FROM revenue_events WHERE publisher_id = $1 AND event_date BETWEEN $2 AND $3',
    [publisher, from, to]);
  for (const r of rows) {
    await client.query(
      'INSERT INTO revenue_events (publisher_id, placement_id, adapter_id, impressions, clicks, revenue, event_date) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [publisher, r[0], r[1], r[2], r[3], r[4], r[5]]);
  }
  await client.query('COMMIT');
  await client.end();
  console.log(rows.length);
}
main().catch((e) => { console.error(`revenue_insert_node: ${e.message}`); process.exit(1); });
