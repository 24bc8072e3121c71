// The driver of bench/queue (run.sh starts PostgreSQL and calls this):
//   node bench.mjs ADMIN_URL APEXOPS_BIN WORKDIR
// For each system (apexops, graphile-worker batched, pg-boss), on the same
// server, in the same run, at concurrency C:
//   bulk     N jobs enqueued in chunks of BULK_CHUNK with the system's bulk
//            call (apexops.enqueue_bulk, graphile_worker.add_jobs,
//            boss.insert): jobs/s
//   burst    those N jobs, in a database just created from the system's
//            template (the job table never analyzed), run by a worker
//            process started after the enqueue: jobs/s from the first
//            handler start to the last
//   analyzed the same after ANALYZE of that database
//   trickle  RATE jobs/s for TRICKLE_S s, one enqueue per transaction on one
//            connection, into an idle worker: handler start minus the time
//            the enqueue call began (call) and returned, its commit
//            acknowledged (commit), p50/p99; and the enqueue call's own
//            round trip (call->ack). The "notify" row is the floor under
//            any LISTEN/NOTIFY queue here: the same enqueues into a client
//            that only listens (notify_listener.mjs), claiming nothing;
//            the "claim" row adds apexops's claim to it (claim_floor.c: one
//            thread that claims on each notification, no hand-over);
//            the "disk" row is the floor under every durable commit: the
//            server's file system's own write+fdatasync at the same rate
//            (fsync_floor.c), in the call->start and call->ack columns.
//            Each trickle also counts the server's WAL syncs (pg_stat_wal,
//            all backends and the walwriter) per job: every durable commit
//            flushes once, unless another's flush covered it
//            TRICKLE_CLIENT=libpq: the enqueues (and their timing) come from
//            trickle_client.c instead of node-postgres, for every system
//            with a SQL enqueue (pg-boss has none and keeps node's)
// Every run checks that each job ran exactly once and that the database
// holds every job as completed; a job lost or run twice fails the bench.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import pg from "pg";

const [ADMIN, BIN, WORK] = process.argv.slice(2);
const N = Number(process.env.JOBS || 100000);
const C = Number(process.env.CONCURRENCY || 8);
const CHUNK = Number(process.env.BULK_CHUNK || 10000);
const RATE = Number(process.env.TRICKLE_RATE || 200);
const TRICKLE_S = Number(process.env.TRICKLE_S || 10);
const CLIENT = process.env.TRICKLE_CLIENT || "node";
if (CLIENT !== "node" && CLIENT !== "libpq") {
	console.error(`bench/queue: TRICKLE_CLIENT=${CLIENT}: use node or libpq`);
	process.exit(64);
}
const SYSTEMS = (process.env.SYSTEMS || "apexops graphile pgboss notify claim disk").split(/\s+/).filter(Boolean);
const CASES = (process.env.CASES || "burst analyzed trickle").split(/\s+/).filter(Boolean);
const HERE = path.dirname(new URL(import.meta.url).pathname);
const NAMES = {
	apexops: "apexops",
	graphile: "graphile-worker (batched)",
	pgboss: "pg-boss",
	notify: "floor: LISTEN/NOTIFY alone (trickle only)",
	claim: "floor: LISTEN/NOTIFY + claim (trickle only)",
	disk: "floor: the disk's fdatasync alone (trickle only)",
};

const us = () => process.hrtime.bigint() / 1000n; // CLOCK_MONOTONIC
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dbUrl = (name) => ADMIN.replace(/\/[^/?]*(\?|$)/, `/${name}$1`);
let failures = 0;

function fail(msg) {
	failures++;
	console.error(`bench/queue: CHECK FAILED: ${msg}`);
}

async function admin(sql) {
	const c = new pg.Client({ connectionString: ADMIN });
	await c.connect();
	try {
		return await c.query(sql);
	} finally {
		await c.end();
	}
}

async function withDb(name, fn) {
	const c = new pg.Client({ connectionString: dbUrl(name) });
	await c.connect();
	try {
		return await fn(c);
	} finally {
		await c.end();
	}
}

function sh(cmd, args, env, quiet) {
	return new Promise((resolve, reject) => {
		const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", quiet ? "ignore" : "inherit", "inherit"] });
		p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")}: exit ${code}`))));
	});
}

// ---- templates: each system's schema, installed once, never analyzed -----
async function makeTemplates() {
	for (const s of SYSTEMS) {
		if (s === "disk") continue; // no database
		const tpl = `bq_tpl_${s}`;
		await admin(`DROP DATABASE IF EXISTS ${tpl}`);
		await admin(`CREATE DATABASE ${tpl}`);
		if (s === "apexops" || s === "notify" || s === "claim") {
			await sh(BIN, ["migrate", "up"], { DATABASE_URL: dbUrl(tpl), APEXOPS_LOG_LEVEL: "error" }, true);
		} else if (s === "graphile") {
			const { runMigrations, Logger } = await import("graphile-worker");
			await runMigrations({ connectionString: dbUrl(tpl), logger: new Logger(() => () => {}) });
		} else {
			const { PgBoss } = await import("pg-boss");
			const boss = new PgBoss({ connectionString: dbUrl(tpl) });
			await boss.start();
			await boss.createQueue("noop", { notify: true });
			await boss.stop({ graceful: true, wait: true });
		}
	}
}

async function freshDb(s) {
	const name = `bq_run_${s}`;
	await admin(`DROP DATABASE IF EXISTS ${name}`);
	await admin(`CREATE DATABASE ${name} TEMPLATE bq_tpl_${s}`);
	// every system starts from a clean checkpoint: the pages the template
	// copies (and, for the first system, the templates) dirtied are written
	// now, not by the checkpointer during the next system's measurement
	await admin("CHECKPOINT");
	return name;
}

// ---- enqueue --------------------------------------------------------------
async function bulkEnqueue(s, name, n) {
	let boss = null;
	if (s === "pgboss") {
		const { PgBoss } = await import("pg-boss");
		boss = new PgBoss({ connectionString: dbUrl(name), supervise: false, schedule: false, migrate: false });
		await boss.start();
	}
	const t0 = us();
	await withDb(name, async (c) => {
		for (let from = 0; from < n; from += CHUNK) {
			const k = Math.min(CHUNK, n - from);
			const items = Array.from({ length: k }, (_, j) => ({ i: from + j }));
			if (s === "apexops") {
				await c.query("SELECT count(*) FROM apexops.enqueue_bulk('noop', $1::jsonb[])", [
					items.map((x) => JSON.stringify(x)),
				]);
			} else if (s === "graphile") {
				await c.query(
					"SELECT count(*) FROM graphile_worker.add_jobs(array(SELECT json_populate_recordset(null::graphile_worker.job_spec, $1::json)))",
					[JSON.stringify(items.map((x) => ({ identifier: "noop", payload: x })))],
				);
			} else {
				await boss.insert("noop", items.map((x) => ({ data: x })));
			}
		}
	});
	const dt = Number(us() - t0) / 1e6;
	if (boss) await boss.stop({ graceful: true, wait: true });
	return n / dt;
}

// ---- workers --------------------------------------------------------------
function startWorker(s, name, log, expect) {
	let p;
	if (s === "apexops") {
		const args = ["worker", "--concurrency", String(C)];
		if (expect > 0) args.push("--exit-when-idle", "300");
		p = spawn(BIN, args, {
			env: {
				...process.env,
				DATABASE_URL: dbUrl(name),
				APEXOPS_TEST_NOOP_LOG: log,
				APEXOPS_TEST_NOOP_LOG_BUFFER: "1",
				APEXOPS_LOG_LEVEL: process.env.APEXOPS_LOG_LEVEL || "warn",
			},
			stdio: ["ignore", "pipe", "inherit"],
		});
	} else if (s === "notify") {
		p = spawn(process.execPath, [path.join(HERE, "notify_listener.mjs"), dbUrl(name), log], {
			stdio: ["ignore", "pipe", "inherit"],
		});
	} else if (s === "claim") {
		p = spawn(path.join(WORK, "claim_floor"), [dbUrl(name), log], { stdio: ["ignore", "pipe", "inherit"] });
	} else {
		p = spawn(process.execPath, [path.join(HERE, "peer_worker.mjs"), s, dbUrl(name), log, String(expect), String(C)], {
			stdio: ["ignore", "pipe", "inherit"],
		});
	}
	const exited = new Promise((resolve) => p.on("exit", (code) => resolve(code)));
	return { p, exited };
}

// "start ID ATTEMPT US" lines: id -> [us...]
function readLog(log) {
	const runs = new Map();
	if (!fs.existsSync(log)) return runs;
	for (const line of fs.readFileSync(log, "utf8").split("\n")) {
		const f = line.split(" ");
		if (f[0] !== "start") continue;
		const v = runs.get(f[1]) || [];
		v.push(Number(f[3]));
		runs.set(f[1], v);
	}
	return runs;
}

// every expected id ran exactly once; the database holds each completed
async function check(s, name, runs, ids, what) {
	let lost = 0,
		twice = 0;
	for (const id of ids) {
		const v = runs.get(String(id));
		if (v === undefined) lost++;
		else if (v.length > 1) twice++;
	}
	if (runs.size !== ids.length) fail(`${NAMES[s]} ${what}: ${runs.size} distinct ids ran, ${ids.length} enqueued`);
	if (lost) fail(`${NAMES[s]} ${what}: ${lost} job(s) never ran`);
	if (twice) fail(`${NAMES[s]} ${what}: ${twice} job(s) ran more than once`);
	if (s === "notify") return !(lost || twice); // no worker: the jobs stay queued
	const sql = {
		// the claim floor claims and completes nothing
		claim: "SELECT count(*) FILTER (WHERE state = 'running' AND attempt = 1) AS ok, count(*) AS n FROM apexops.queue_jobs",
		apexops: "SELECT count(*) FILTER (WHERE state = 'succeeded' AND attempt = 1) AS ok, count(*) AS n FROM apexops.queue_jobs",
		// graphile-worker deletes a job when it completes
		graphile: "SELECT 0 AS ok, count(*) AS n FROM graphile_worker._private_jobs",
		pgboss: "SELECT count(*) FILTER (WHERE state = 'completed' AND retry_count = 0) AS ok, count(*) AS n FROM pgboss.job WHERE name = 'noop'",
	}[s];
	const r = await withDb(name, (c) => c.query(sql));
	const ok = Number(r.rows[0].ok),
		n = Number(r.rows[0].n);
	if (s === "graphile" ? n !== 0 : ok !== ids.length || n !== ids.length)
		fail(`${NAMES[s]} ${what}: the database holds ${n} job(s), ${ok} ${s === "claim" ? "claimed" : "completed"} on the first attempt; expected ${s === "graphile" ? 0 : ids.length}`);
	return !(lost || twice);
}

async function jobIds(s, name) {
	if (s !== "apexops") return Array.from({ length: N }, (_, i) => i);
	const r = await withDb(name, (c) => c.query("SELECT id FROM apexops.queue_jobs ORDER BY id"));
	return r.rows.map((x) => x.id);
}

async function burst(s, analyzed) {
	const what = analyzed ? "burst after ANALYZE" : "burst, no statistics";
	const name = await freshDb(s);
	const bulk = await bulkEnqueue(s, name, N);
	if (analyzed) await withDb(name, (c) => c.query("ANALYZE"));
	const ids = await jobIds(s, name);
	const log = path.join(WORK, `${s}-${analyzed ? "analyzed" : "burst"}.log`);
	fs.rmSync(log, { force: true });
	const w = startWorker(s, name, log, N);
	const code = await w.exited;
	if (code !== 0) fail(`${NAMES[s]} ${what}: the worker exited ${code}`);
	const runs = readLog(log);
	await check(s, name, runs, ids, what);
	let lo = Infinity,
		hi = -Infinity;
	for (const v of runs.values())
		for (const t of v) {
			if (t < lo) lo = t;
			if (t > hi) hi = t;
		}
	const rate = runs.size > 1 ? (runs.size - 1) / ((hi - lo) / 1e6) : 0;
	return { bulk, rate };
}

function pct(v, p) {
	const s = [...v].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// the disk under every durable commit: fsync_floor.c's write+fdatasync at
// the trickle's rate, in the server's file system (BENCH_DISK_DIR); its
// p50/p99 stand in the call->start and call->ack columns
async function diskFloor() {
	const out = execFileSync(path.join(WORK, "fsync_floor"), [process.env.BENCH_DISK_DIR || WORK, String(RATE), String(RATE * TRICKLE_S)], { encoding: "utf8" });
	const [p50, p99, max] = out.trim().split(" ").map(Number);
	return { p50call: p50, p99call: p99, p50enq: p50, p99enq: p99, max };
}

async function trickle(s) {
	if (s === "disk") return diskFloor();
	const name = await freshDb(s);
	const log = path.join(WORK, `${s}-trickle.log`);
	fs.rmSync(log, { force: true });
	const w = startWorker(s, name, log, 0);
	if (s !== "apexops")
		await new Promise((resolve) => w.p.stdout.on("data", (d) => String(d).includes("ready") && resolve()));
	else await sleep(500);
	let boss = null;
	if (s === "pgboss") {
		const { PgBoss } = await import("pg-boss");
		boss = new PgBoss({ connectionString: dbUrl(name), supervise: false, schedule: false, migrate: false });
		await boss.start();
	}
	const c = new pg.Client({ connectionString: dbUrl(name) });
	await c.connect();
	let seq = 0; // the floor's listener numbers the notifications
	const enq = async (i) => {
		const p = JSON.stringify({ i });
		// named statements: parsed once, as an application's would be
		if (s === "notify") {
			await c.query({ name: "enq", text: "SELECT apexops.enqueue('noop', $1::jsonb) AS id", values: [p] });
			return String(seq++);
		}
		if (s === "apexops" || s === "claim")
			return (await c.query({ name: "enq", text: "SELECT apexops.enqueue('noop', $1::jsonb) AS id", values: [p] })).rows[0].id;
		if (s === "graphile") await c.query({ name: "enq", text: "SELECT graphile_worker.add_job('noop', $1::json)", values: [p] });
		else await boss.send("noop", { i });
		return String(i);
	};
	// the server's WAL writes and syncs during the trickle (pg_stat_wal:
	// cluster-wide, so the enqueuer's commits, the worker's, the walwriter's)
	const walStat = async () => (await admin("SELECT wal_write::bigint AS w, wal_sync::bigint AS s, wal_bytes::bigint AS b FROM pg_stat_wal")).rows[0];
	// a checkpoint first, so that none runs (nor is still writing, as
	// after a burst) during any system's trickle: each starts alike
	await admin("CHECKPOINT");
	const wal0 = await walStat();
	const total = RATE * TRICKLE_S,
		step = 1e6 / RATE;
	const warm = [],
		calls = new Map(),
		acks = new Map(),
		ids = [];
	if (CLIENT === "libpq" && s !== "pgboss") {
		// the same enqueues, warm-up and schedule from a libpq client
		const sql = s === "graphile" ? "SELECT graphile_worker.add_job('noop', $1::json)" : "SELECT apexops.enqueue('noop', $1::jsonb) AS id";
		const out = path.join(WORK, `${s}-client.txt`);
		await sh(path.join(WORK, "trickle_client"), [dbUrl(name), sql, String(RATE), String(total), "100", out], {}, false);
		const lines = fs.readFileSync(out, "utf8").trim().split("\n");
		lines.forEach((ln, n) => {
			const [k, call, ack, val] = ln.split(" ");
			// the job's name in the worker's log: its id (apexops, claim),
			// the notification's number (notify), the payload's i (graphile)
			const id = s === "notify" ? String(n) : s === "graphile" ? k : val;
			if (Number(k) < 0) warm.push(id);
			else {
				calls.set(id, Number(call));
				acks.set(id, Number(ack));
				ids.push(id);
			}
		});
	} else {
		// warm up, as graphile-worker's latencyTest does: 100 jobs, then settle
		for (let i = 0; i < 100; i++) warm.push(await enq(-1 - i));
		await sleep(1500);
		const t0 = Number(us()) + 1000;
		for (let i = 0; i < total; i++) {
			const due = t0 + i * step;
			let now = Number(us());
			if (due - now > 1500) await sleep((due - now) / 1000 - 1);
			while ((now = Number(us())) < due);
			const tc = us();
			const id = await enq(i);
			acks.set(String(id), Number(us()));
			calls.set(String(id), Number(tc));
			ids.push(id);
		}
	}
	// wait (up to 60 s) until the system has taken every job, then 1.5 s
	// for the last handlers to start: on a slow host a peer can still hold
	// queued jobs 1.5 s after the last enqueue, and stopping it then would
	// count them as lost. Time spent here is not measured.
	const apexopsQueued = "SELECT count(*) AS n FROM apexops.queue_jobs WHERE state IN ('available', 'failed-retrying')";
	const queued = {
		apexops: apexopsQueued,
		claim: apexopsQueued,
		graphile: "SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE locked_at IS NULL",
		pgboss: "SELECT count(*) AS n FROM pgboss.job WHERE name = 'noop' AND state IN ('created', 'retry')",
	}[s];
	const wal1 = await walStat();
	const per = (k) => ((Number(wal1[k]) - Number(wal0[k])) / (total + 100)).toFixed(2);
	process.stderr.write(`bench/queue: ${NAMES[s]}: trickle WAL per job: ${per("s")} syncs, ${per("w")} writes, ${per("b")} bytes\n`);
	for (const until = Date.now() + 60000; queued && Date.now() < until; await sleep(100))
		if (Number((await c.query(queued)).rows[0].n) === 0) break;
	await sleep(1500);
	await c.end();
	if (boss) await boss.stop({ graceful: true, wait: true });
	w.p.kill("SIGTERM");
	const code = await w.exited;
	if (code !== 0) fail(`${NAMES[s]} trickle: the worker exited ${code}`);
	const runs = readLog(log);
	const all = [...warm.map(String), ...ids.map(String)];
	await check(s, name, runs, all, "trickle");
	const fromCall = [],
		fromAck = [],
		enqTrip = [];
	for (const id of ids) {
		const v = runs.get(String(id));
		if (!v) continue;
		fromCall.push((v[0] - calls.get(String(id))) / 1000);
		fromAck.push((v[0] - acks.get(String(id))) / 1000);
		enqTrip.push((acks.get(String(id)) - calls.get(String(id))) / 1000);
	}
	// TRICKLE_DUMP=DIR: each job's call, ack and start (µs, CLOCK_MONOTONIC)
	if (process.env.TRICKLE_DUMP) {
		const rows = ids.filter((id) => runs.get(String(id))).map((id) => `${id} ${calls.get(String(id))} ${acks.get(String(id))} ${runs.get(String(id))[0]}`);
		fs.writeFileSync(path.join(process.env.TRICKLE_DUMP, `${s}-trickle.tsv`), rows.join("\n") + "\n");
	}
	return {
		p50call: pct(fromCall, 50),
		p99call: pct(fromCall, 99),
		p50: pct(fromAck, 50),
		p99: pct(fromAck, 99),
		p50enq: pct(enqTrip, 50),
		p99enq: pct(enqTrip, 99),
		walSyncs: (Number(wal1.s) - Number(wal0.s)) / (total + 100),
	};
}

// ---- main -----------------------------------------------------------------
const res = {};
await makeTemplates();
for (const s of SYSTEMS) res[s] = {};
// One trickle of the first system, run and thrown away before any measured
// one: the first trickle of a run drew a slower enqueue p99 (2.2-3.3 ms
// against 1.3-2.1 for the later systems, whichever system went first),
// the driver's own code and the server being cold; without this the first
// system pays for it. TRICKLE_WARMUP=0 leaves it out.
if (CASES.includes("trickle") && process.env.TRICKLE_WARMUP !== "0") {
	process.stderr.write(`bench/queue: warm-up trickle (${NAMES[SYSTEMS[0]]}, not counted)...\n`);
	await trickle(SYSTEMS[0]);
}
// interleave the systems case by case, so that a neighbour's load on the
// shared machine falls on all of them alike
for (const cs of CASES)
	for (const s of SYSTEMS) {
		if ((s === "notify" || s === "claim" || s === "disk") && cs !== "trickle") continue;
		process.stderr.write(`bench/queue: ${NAMES[s]}: ${cs}...\n`);
		if (cs === "trickle") Object.assign(res[s], await trickle(s));
		else {
			const r = await burst(s, cs === "analyzed");
			res[s][cs] = r.rate;
			res[s][`bulk_${cs}`] = r.bulk;
		}
	}
const f0 = (x) => (x === undefined ? "-" : Math.round(x).toLocaleString("en-US"));
const f2 = (x) => (x === undefined ? "-" : x.toFixed(2));
console.log(`\nQueue benchmark: ${N.toLocaleString("en-US")} no-op jobs, concurrency ${C}, trickle ${RATE}/s for ${TRICKLE_S} s, enqueued by ${CLIENT === "libpq" ? "libpq (trickle_client.c; pg-boss by node-postgres)" : "node-postgres"}`);
console.log("| system | burst, no statistics (jobs/s) | burst after ANALYZE (jobs/s) | bulk enqueue (jobs/s) | trickle commit->start p50 / p99 (ms) | trickle call->start p50 / p99 (ms) | trickle enqueue call->ack p50 / p99 (ms) | trickle WAL syncs per job |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const s of SYSTEMS) {
	const r = res[s];
	const bulk = r.bulk_burst !== undefined && r.bulk_analyzed !== undefined ? (r.bulk_burst + r.bulk_analyzed) / 2 : (r.bulk_burst ?? r.bulk_analyzed);
	console.log(
		`| ${NAMES[s]} | ${f0(r.burst)} | ${f0(r.analyzed)} | ${f0(bulk)} | ${f2(r.p50)} / ${f2(r.p99)} | ${f2(r.p50call)} / ${f2(r.p99call)} | ${f2(r.p50enq)} / ${f2(r.p99enq)} | ${f2(r.walSyncs)} |`,
	);
}
if (res.apexops && res.graphile) {
	for (const cs of ["burst", "analyzed"])
		if (res.apexops[cs] && res.graphile[cs])
			console.log(`apexops / graphile-worker, ${cs}: ${(res.apexops[cs] / res.graphile[cs]).toFixed(2)}x (target >= 2x)`);
}
if (res.apexops && res.apexops.p99call !== undefined)
	console.log(
		`apexops trickle p99 call->start: ${f2(res.apexops.p99call)} ms (target < 2 ms); commit->start ${f2(res.apexops.p99)} ms` +
			(res.disk && res.disk.p99call !== undefined ? `; the disk's own fdatasync p99 in this run ${f2(res.disk.p99call)} ms (max ${f2(res.disk.max)})` : ""),
	);
console.log(failures ? `CHECKS FAILED: ${failures}` : "checks: every job ran exactly once and is recorded completed, in every run");
process.exit(failures ? 1 : 0);
