#!/usr/bin/env node
// Test oracle for `apexops sandbox revenue`: the original generator's
// formulas (ORIGINAL-SYSTEM.md §2.10), written again in JavaScript so that
// toFixed, Math.round and Math.sin are the real ones. Reads placements as
// "id<TAB>name<TAB>type" lines in name order on stdin and prints the rows
// as "placement_id adapter_id impressions clicks revenue event_date"
// (tab-separated), then "total <x.xx>".
//   node revenue_ref.js TIER DAYS START < placements.tsv
'use strict';
const [tier, daysArg, startArg] = process.argv.slice(2);
const TIERS = {
	starter: { monthlyRevenue: 3000, baseCtr: 0.008 },
	growth: { monthlyRevenue: 50000, baseCtr: 0.011 },
	scale: { monthlyRevenue: 150000, baseCtr: 0.014 },
};
const ADAPTERS = [
	{ id: 'a7f66258-6c5c-462f-9ff4-126886c1d7d3', ecpm: 12.5 },
	{ id: 'ca13eef0-bdbd-4475-823f-93c5b2932d6d', ecpm: 8.1 },
	{ id: 'dc801f21-749c-46ae-ad33-ded15da2f5f0', ecpm: 5.3 },
];
const WEIGHT = { interstitial: 1, rewarded: 1.15, banner: 0.4 };
const CTR = { interstitial: 1, rewarded: 0.85, banner: 0.45 };

function hash(...parts) {
	const s = parts.join('|');
	let h = 0;
	for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) >>> 0;
	return h || 1;
}
function noise(seed) {
	const v = Math.sin(seed) * 10000;
	return v - Math.floor(v);
}

const placements = require('fs').readFileSync(0, 'utf8').split('\n')
	.filter((l) => l.length > 0).map((l) => {
		const [id, name, type] = l.split('\t');
		return { id, name, type };
	});
const cfg = TIERS[tier];
const days = Math.max(1, parseInt(daysArg, 10));
const start = new Date(`${startArg}T00:00:00Z`);
const dailyTarget = cfg.monthlyRevenue / Math.max(days, 1);
const W = placements.reduce((s, p) => s + (WEIGHT[p.type] ?? 0.75), 0);
let total = 0;
const out = [];
for (let d = 0; d < days; d++) {
	const eventDate = new Date(start.getTime() + d * 86400000);
	const daySeed = hash(tier, d, eventDate.toISOString());
	const dayRevenue = dailyTarget * (0.9 + noise(daySeed) * 0.2);
	placements.forEach((p, i) => {
		const baseShare = ((WEIGHT[p.type] ?? 0.75) / W) * dayRevenue;
		const shareVar = 0.85 + noise(hash(tier, d, p.id)) * 0.3;
		const revenue = Number((baseShare * shareVar).toFixed(2));
		if (revenue <= 0) return;
		const a = ADAPTERS[(i + d) % 3];
		const impressions = Math.max(80, Math.round((revenue * 1000) / Math.max(a.ecpm, 0.5)));
		const clicks = Math.max(0, Math.round(impressions * cfg.baseCtr * (CTR[p.type] ?? 0.7)));
		total += revenue;
		out.push([p.id, a.id, impressions, clicks, revenue.toFixed(2),
			eventDate.toISOString().slice(0, 10)].join('\t'));
	});
}
out.push(`total ${total.toFixed(2)}`);
process.stdout.write(out.join('\n') + '\n');
