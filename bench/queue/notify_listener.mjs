// The floor under any LISTEN/NOTIFY queue on this machine, for bench/queue's
// trickle case: a client that only LISTENs on apexops_queue and records when
// each notification arrives, claiming nothing and running nothing.
//   node notify_listener.mjs URL LOG
// apexops.enqueue() sends one notification per enqueuing transaction, and
// the driver enqueues one job per transaction on one connection, so the
// k-th notification belongs to the k-th job enqueued: it is recorded as
// "start K 1 US" (US: CLOCK_MONOTONIC microseconds, the clock of the other
// workers' logs). Prints "ready" once listening; writes the log at SIGTERM.
import fs from "node:fs";
import pg from "pg";

const [url, logPath] = process.argv.slice(2);
const lines = [];
let k = 0;
const c = new pg.Client({ connectionString: url });
await c.connect();
c.on("notification", () => {
	lines.push(`start ${k++} 1 ${process.hrtime.bigint() / 1000n}`);
});
await c.query("LISTEN apexops_queue");
process.on("SIGTERM", async () => {
	fs.writeFileSync(logPath, lines.join("\n") + (lines.length ? "\n" : ""));
	await c.end();
	process.exit(0);
});
console.log("ready");
