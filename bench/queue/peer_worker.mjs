// One peer's worker for bench/queue, in its own process as apexops's is:
//   node peer_worker.mjs graphile|pgboss URL LOG EXPECT CONCURRENCY
// Runs no-op jobs of task "noop" at CONCURRENCY. Each execution is
// recorded as "start SEQ ATTEMPT US" (SEQ: the payload's i; US: CLOCK_MONOTONIC
// microseconds, the clock apexops's noop hook uses, so the driver can compare
// across processes). EXPECT > 0: stop gracefully (completions flushed) once
// EXPECT executions were seen; EXPECT 0: run until SIGTERM. Prints "ready"
// once the worker is listening. The log is written at exit.
import fs from "node:fs";

const [system, url, logPath, expectArg, concArg] = process.argv.slice(2);
const expect = Number(expectArg);
const conc = Number(concArg || 8);
const lines = [];
let seen = 0;
let stopping = false;
let stopFn = async () => {};

const us = () => process.hrtime.bigint() / 1000n;

function record(data, attempt) {
	lines.push(`start ${data.i} ${attempt} ${us()}`);
	seen++;
	if (expect > 0 && seen >= expect) setImmediate(stop);
}

async function stop() {
	if (stopping) return;
	stopping = true;
	await stopFn();
	fs.writeFileSync(logPath, lines.join("\n") + (lines.length ? "\n" : ""));
	process.exit(0);
}
process.on("SIGTERM", stop);

if (system === "graphile") {
	const { run } = await import("graphile-worker");
	// the batched configuration of graphile-worker's performance page and
	// its perfTest/graphile.config.js, at concurrency C
	const runner = await run({
		connectionString: url,
		concurrency: conc,
		maxPoolSize: conc + 1,
		noHandleSignals: true,
		pollInterval: 2000,
		preset: {
			worker: {
				concurrentJobs: conc,
				maxPoolSize: conc + 1,
				localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
				completeJobBatchDelay: 0,
				failJobBatchDelay: 0,
			},
		},
		logger: new (await import("graphile-worker")).Logger(() => () => {}),
		taskList: {
			noop: async (payload, helpers) => {
				record(payload, helpers.job.attempts);
			},
		},
	});
	stopFn = () => runner.stop();
} else if (system === "pgboss") {
	const { PgBoss } = await import("pg-boss");
	const boss = new PgBoss({ connectionString: url, useListenNotify: true, max: conc + 2 });
	boss.on("error", (e) => console.error("pg-boss:", e.message));
	await boss.start();
	// C workers, each fetching a batch and completing it in one statement
	await boss.work(
		"noop",
		{
			localConcurrency: conc,
			batchSize: Number(process.env.PGBOSS_BATCH || 16),
			burstWhenBatchFull: true,
			pollingIntervalSeconds: 0.5,
			includeMetadata: true,
		},
		async (jobs) => {
			for (const j of jobs) record(j.data, j.retryCount + 1);
		},
	);
	stopFn = () => boss.stop({ graceful: true, wait: true, timeout: 30000 });
} else {
	console.error(`peer_worker: unknown system '${system}' (graphile, pgboss)`);
	process.exit(64);
}
console.log("ready");
