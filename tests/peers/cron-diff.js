// Differential check of jobs/cron_expr.c against the npm package
// cron-parser (pinned in package.json): random five-field expressions
// (a fixed seed, printed), seven time zones, starting instants on and
// around DST transition days; the next fire times of the C driver
// (tests/tools/cron_next.c) and of cron-parser must agree wherever the two
// define the same thing. Run by tests/e2e/test_cron_expr_diff.sh:
//   node cron-diff.js PATH/TO/cron_next
// Env: CRON_DIFF_SEED (default below), CRON_DIFF_EXPRS (how many).
// Prints "# ..." notes, mismatches, and a last line
//   summary cases=N accepted=N compared=N dst_day=N excluded_dst=N
//   excluded_domdow=N excluded_lord_howe=N duplicates=N mismatches=N
// Exits 1 on any mismatch.
//
// Where cron-parser's documented behaviour differs from the rules in
// src/jobs/cron_expr.h, those cases are left out, each for a reason given
// where it is left out:
//   1. DST gap (spring forward, the interval [T, T+d) after a transition
//      at T that moves clocks forward by d): we fire a local time that
//      does not exist once, at T; cron-parser moves it forward by d
//      (02:30 -> 03:30). Fire times inside [T, T+d) are left out on both
//      sides.
//   2. DST overlap (fall back: [T, T+d) is the second occurrence of the
//      local times [T-d, T) repeated after T): we fire only at the first
//      occurrence; cron-parser fires some expressions (hourly ones) at
//      both. Fire times inside [T, T+d) are left out on both sides. The
//      first occurrences are compared.
//   3. Day-of-month with day-of-week: Vixie cron (and we) ANDs the two
//      when either field begins with '*' ("*/2"); cron-parser treats only
//      a bare "*" as a wildcard and ORs "*/2" with a restricted other
//      field. Expressions where one field is "*/N" and the other is not
//      "*" are left out.
//   4. A value listed twice in a field ("1,1-5"): Vixie cron (and we)
//      accept it, cron-parser refuses it ("duplicate values found"). The
//      generator draws again when cron-parser refuses so; a few fixed
//      expressions check that the difference is only that.
//   5. @midnight: cron-parser does not know it; it is @daily in Vixie
//      cron, so cron-parser gets @daily in its place.
//   6. Australia/Lord_Howe's 30-minute fall back: cron-parser throws
//      ("loop limit exceeded") or goes back in time across it. Its fire
//      times up to that point are compared, the rest left out. The
//      unit tests (tests/unit/test_cron_expr.c) check ours there.
'use strict';
const { spawnSync } = require('child_process');
const { CronExpressionParser } = require('cron-parser');

const driver = process.argv[2];
if (!driver) {
	console.error('usage: node cron-diff.js PATH/TO/cron_next');
	process.exit(64);
}
const SEED = Number(process.env.CRON_DIFF_SEED || 20261201);
const NEXPR = Number(process.env.CRON_DIFF_EXPRS || 2000);
const COUNT = 5; // fire times per case
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York',
	'Australia/Lord_Howe', 'Asia/Kolkata', 'Australia/Sydney',
	'America/Santiago'];
console.log(`# seed ${SEED} (CRON_DIFF_SEED), ${NEXPR} expressions, zones ${ZONES.join(' ')}`);

// mulberry32: small, seeded, the same on every machine
let state = SEED >>> 0;
function rand() {
	state = (state + 0x6d2b79f5) >>> 0;
	let t = state;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = (a) => a[Math.floor(rand() * a.length)];

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
// [min, max, names, name base]; day-of-week allows 7 (Sunday)
const SPEC = [[0, 59], [0, 23], [1, 31], [1, 12, MONTHS, 1], [0, 7, DAYS, 0]];

function value(f, v) {
	const [, , names, base] = SPEC[f];
	if (names && v - base < names.length && rand() < 0.3) {
		const n = names[v - base];
		return rand() < 0.2 ? n.toUpperCase() : n;
	}
	return String(v);
}
function item(f) {
	const [min, max] = SPEC[f];
	const size = f === 4 ? 7 : max - min + 1;
	const r = rand();
	if (r < 0.45)
		return value(f, int(min, max));
	if (r < 0.75) {
		const a = int(min, max), b = int(a, max);
		return `${value(f, a)}-${value(f, b)}`;
	}
	if (r < 0.9) {
		const a = int(min, max), b = int(a, max);
		return `${value(f, a)}-${value(f, b)}/${int(1, size)}`;
	}
	return `${value(f, int(min, max))}/${int(1, size)}`; // Vixie's N/STEP
}
function field(f) {
	const r = rand();
	// day fields are '*' more often, so that both combinations come up
	const star = f === 2 || f === 4 ? 0.45 : 0.3;
	if (r < star)
		return '*';
	if (r < star + 0.15) {
		const [min, max] = SPEC[f];
		return `*/${int(1, Math.min(f === 4 ? 7 : max - min + 1, 20))}`;
	}
	const n = int(1, 3), items = [];
	for (let i = 0; i < n; i++)
		items.push(item(f));
	return items.join(',');
}
const MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];
function expression() {
	if (rand() < 0.03)
		return pick(MACROS);
	const f = [];
	for (let i = 0; i < 5; i++)
		f.push(field(i));
	return f.join(' ');
}
// rule 5
const forCronParser = (e) => (e.trim() === '@midnight' ? '@daily' : e);
// rule 4: draw again while cron-parser refuses a duplicate value
let redrawn = 0;
function expressionNoDuplicates() {
	for (;;) {
		const e = expression();
		try {
			CronExpressionParser.parse(forCronParser(e));
		} catch (x) {
			if (/duplicate values found/.test(String(x.message))) {
				redrawn++;
				continue;
			}
		}
		return e;
	}
}

// UTC offset in seconds of zone at t (seconds), through Intl
const fmts = new Map();
function offset(zone, t) {
	let fmt = fmts.get(zone);
	if (!fmt) {
		fmt = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23',
			year: 'numeric', month: 'numeric', day: 'numeric',
			hour: 'numeric', minute: 'numeric', second: 'numeric' });
		fmts.set(zone, fmt);
	}
	const p = {};
	for (const x of fmt.formatToParts(new Date(t * 1000)))
		p[x.type] = Number(x.value);
	return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) / 1000 - t;
}
// transitions of zone in [from, to): {t, d}, d the change of offset
function transitions(zone, from, to) {
	const out = [];
	const step = 6 * 3600; // no zone changes offset twice in six hours
	let prev = offset(zone, from);
	for (let t = from + step; t < to; t += step) {
		const o = offset(zone, t);
		if (o === prev)
			continue;
		let lo = t - step, hi = t; // offset(lo) == prev, offset(hi) != prev
		while (hi - lo > 1) {
			const mid = Math.floor((lo + hi) / 2);
			if (offset(zone, mid) === prev) lo = mid; else hi = mid;
		}
		out.push({ t: hi, d: o - prev });
		prev = o;
	}
	return out;
}
const SCAN_FROM = Date.UTC(2024, 0, 1) / 1000, SCAN_TO = Date.UTC(2060, 0, 1) / 1000;
const START_FROM = Date.UTC(2025, 0, 1) / 1000, START_TO = Date.UTC(2028, 0, 1) / 1000;
const zoneTrans = new Map();
for (const z of ZONES) {
	zoneTrans.set(z, transitions(z, SCAN_FROM, SCAN_TO));
	const near = zoneTrans.get(z).filter((x) => x.t >= START_FROM && x.t < START_TO);
	console.log(`# ${z}: ${near.length} transitions in 2025-2027` +
		(near.length ? ` (first ${new Date(near[0].t * 1000).toISOString()}, ${near[0].d / 60} min)` : ''));
}
// rules 1 and 2: [T, T+|d|) after each transition
function inDstWindow(zone, t) {
	for (const x of zoneTrans.get(zone))
		if (t >= x.t && t < x.t + Math.abs(x.d))
			return true;
	return false;
}
// within a day either side of a transition: what the DST coverage counts
function onDstDay(zone, t) {
	for (const x of zoneTrans.get(zone))
		if (Math.abs(t - x.t) < 86400)
			return true;
	return false;
}
// starting instants: on and around the transition days, and anywhere
function starts(zone) {
	const out = [];
	const near = zoneTrans.get(zone).filter((x) => x.t >= START_FROM && x.t < START_TO);
	if (near.length > 0 && rand() < 0.75) {
		const x = pick(near);
		out.push(x.t + pick([-26 * 3600, -3 * 3600, -3600 - 30, -1, 0, 59, 1800,
			Math.abs(x.d) - 1, Math.abs(x.d) + 60, 5 * 3600]));
	}
	out.push(int(START_FROM, START_TO));
	return out;
}

// rule 3
function domDowDiffers(expr) {
	const f = expr.trim().split(/\s+/);
	if (f.length !== 5)
		return false;
	const stepped = (s) => s.startsWith('*') && s !== '*';
	return (stepped(f[2]) && f[4] !== '*') || (stepped(f[4]) && f[2] !== '*');
}

const cases = [];
// rule 4, the fixed ones: accepted here, refused by cron-parser for the
// duplicate and nothing else
const DUPLICATES = ['1,1 * * * *', '0 3-5,4 * * *', '0 0 1,1-3 * *', '0 0 * jan,1 *', '0 0 * * 0,7'];
for (const e of DUPLICATES)
	cases.push({ e, z: 'UTC', s: START_FROM, duplicate: true });
for (let i = 0; i < NEXPR; i++) {
	const e = expressionNoDuplicates();
	for (const z of ZONES)
		for (const s of starts(z))
			cases.push({ e, z, s });
}
const input = cases.map((c) => `${c.z} ${c.s} ${COUNT} ${c.e}\n`).join('');
const run = spawnSync(driver, [], { input, maxBuffer: 1 << 28, encoding: 'utf8' });
if (run.status !== 0) {
	console.log(`not ok: ${driver} exited ${run.status}: ${(run.stderr || '').slice(0, 2000)}`);
	process.exit(1);
}
const lines = run.stdout.split('\n');
const iso = (t) => new Date(t * 1000).toISOString().replace('.000', '');
let accepted = 0, compared = 0, dstDay = 0, exclDst = 0, exclDomDow = 0, mismatches = 0;
function mismatch(c, why, ours, theirs) {
	mismatches++;
	if (mismatches <= (process.env.CRON_DIFF_SHOW || 25))
		console.log(`MISMATCH ${why}: '${c.e}' TZ=${c.z} after ${iso(c.s)} (${c.s})\n` +
			`#   ours:        ${ours}\n#   cron-parser: ${theirs}`);
}
let exclLordHowe = 0, duplicates = 0;
for (let i = 0; i < cases.length; i++) {
	const c = cases[i], line = lines[i] || '';
	let theirs = null, theirErr = null, broke = null, it = null;
	try {
		it = CronExpressionParser.parse(forCronParser(c.e), { currentDate: new Date(c.s * 1000), tz: c.z });
	} catch (x) {
		theirErr = String(x.message || x);
	}
	if (it !== null) {
		theirs = [];
		for (let k = 0; k < COUNT; k++) {
			let t;
			try {
				t = it.next().getTime() / 1000;
			} catch (x) {
				broke = String(x.message || x);
				break;
			}
			if (theirs.length > 0 && t <= theirs[theirs.length - 1]) {
				broke = `went back to ${iso(t)}`;
				break;
			}
			theirs.push(t);
		}
	}
	const oursOk = line.startsWith('ok ');
	const theirText = () => (theirs ? theirs.map(iso).join(' ') + (broke ? ` then ${broke}` : '') : `error ${theirErr}`);
	if (!oursOk && !line.startsWith('error ')) {
		mismatch(c, 'driver gave no answer', line, theirText());
		continue;
	}
	if (c.duplicate) {
		if (!oursOk || theirs !== null || !/duplicate values found/.test(theirErr))
			mismatch(c, 'a duplicate value: expected ours to accept and cron-parser to refuse only for it', line, theirText());
		else
			duplicates++;
		continue;
	}
	if (!oursOk || theirs === null) {
		if (oursOk !== (theirs !== null))
			mismatch(c, 'one side refused the expression', line, theirText());
		continue;
	}
	accepted++;
	if (domDowDiffers(c.e)) {
		exclDomDow++; // rule 3
		continue;
	}
	const ours = line.slice(3).split(' ').map(Number);
	if (broke !== null) {
		if (c.z !== 'Australia/Lord_Howe') {
			mismatch(c, 'cron-parser failed', ours.map(iso).join(' '), theirText());
			continue;
		}
		exclLordHowe++; // rule 6
		if (theirs.length === 0)
			continue;
	}
	// compare up to the earlier of the two last fire times, outside the
	// DST windows (rules 1 and 2)
	const horizon = Math.min(ours[ours.length - 1], theirs[theirs.length - 1]);
	const keep = (list) => list.filter((t) => {
		if (t > horizon)
			return false;
		if (inDstWindow(c.z, t)) {
			exclDst++;
			return false;
		}
		return true;
	});
	const a = keep(ours), b = keep(theirs);
	if (a.join(' ') !== b.join(' ')) {
		mismatch(c, 'fire times differ', ours.map(iso).join(' '), theirText());
		continue;
	}
	compared += a.length;
	dstDay += a.filter((t) => onDstDay(c.z, t)).length;
}
console.log(`# drawn again for a duplicate value (rule 4): ${redrawn}`);
console.log(`summary cases=${cases.length} accepted=${accepted} compared=${compared} dst_day=${dstDay} ` +
	`excluded_dst=${exclDst} excluded_domdow=${exclDomDow} excluded_lord_howe=${exclLordHowe} ` +
	`duplicates=${duplicates} mismatches=${mismatches}`);
process.exit(mismatches > 0 ? 1 : 0);
