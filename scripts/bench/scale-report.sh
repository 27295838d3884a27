#!/bin/bash
# scale-report.sh RESULT_DIR: section 9 of docs/BENCHMARKS.md from the scale
# part of scripts/bench.sh (issue 11): RESULT_DIR/scale.tsv (PART N MODE
# METRIC VALUE, one line per run), scale-pkt.txt (bench_pkt's lines at the
# largest N), scale-maglev.txt (maglev_bench --sweep). Prints markdown.
set -eu
RES=$1
touch "$RES/scale.tsv" "$RES/scale-pkt.txt" "$RES/scale-maglev.txt"

# med N METRIC: median (min-max) of a metric's runs at N, or "-".
med() {
	awk -F'\t' -v n="$1" -v m="$2" '$2 == n && $4 == m { v[++c] = $5 }
		END {
			if (!c) { print "-"; exit }
			for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
			if (c == 1) print v[1]; else printf "%s (%s–%s)\n", v[int((c + 1) / 2)], v[1], v[c]
		}' "$RES/scale.tsv"
}
# kv FILE LINE-PREFIX KEY: KEY=value of the first line of FILE starting with PREFIX
kv() { grep -m1 "^$2" "$1" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
# tab WHAT ROW: one table row per maglev_bench line "WHAT k=v ...", ROW an awk
# expression over k[KEY]
tab() {
	awk -v what="$1" '$1 == what {
		delete k
		for (i = 2; i <= NF; i++) { p = index($i, "="); if (p) k[substr($i, 1, p - 1)] = substr($i, p + 1) }
		print '"$2"'
	}' "$RES/scale-maglev.txt"
}

NS=$(awk -F'\t' '{ print $2 }' "$RES/scale.tsv" | sort -un)
echo "## 9. 100,000 Services and Maglev tables that stay put (issue 11)"
echo
echo "\`BENCH_PARTS=scale scripts/bench.sh\` (N from SCALE_NS, default 100,000): N Services of"
echo "E endpoints (SCALE_E, default 4: 100,000 × 10 would be a 95 MB file, over the config"
echo "file's 64 MiB limit) from the config file (scripts/bench/gen-config.sh), the daemon started on"
echo "it with maps sized for it (\`--maglev-chunks\` from \`svcplane check-config\`'s own count)."
echo "*start → ready*: process start to \`svcplane status\` ready (0.1 s polls), maps"
echo "filled and the datapath attached. *services*: \`svcplane services\` (the table, 8"
echo "backends per Service) and \`--json\` (all), 3 runs, wall time and in brackets CPU time"
echo "(user + system: on a busy machine most of the wall time is waiting for a CPU; the load"
echo "average is below the table). Traffic: the Service under test"
echo "(its endpoints are real pods) by connbench and pktgen as in parts 2 and 3; *others*:"
echo "Services from the middle and the end of the file found in sp_services."
echo
echo "| N | E | config MiB | start → ready ms | BPF maps MiB | Maglev tables MiB | RSS MiB | peak RSS MiB | services ms | services --json ms | conn/s | Mpps | others |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in $NS; do
	echo "| $n | $(med "$n" endpoints) | $(med "$n" config_mib) | $(med "$n" ready_ms) | $(med "$n" memlock_mib) |" \
		"$(med "$n" maglev_table_mib) | $(med "$n" rss_mib) | $(med "$n" hwm_mib) |" \
		"$(med "$n" services_ms) [$(med "$n" services_cpu_ms)] |" \
		"$(med "$n" services_json_ms) [$(med "$n" services_json_cpu_ms)] | $(med "$n" cps) |" \
		"$(med "$n" mpps) | $(med "$n" others_present)/3 |"
done
echo
echo "Load average (1, 5, 15 min) at the start of the run: $(cat "$RES/load-start" 2>/dev/null || echo -)."
echo
echo "Goals (issue 11): \`svcplane services\` on 10,000 Services under 1 s; the Maglev tables"
echo "of 10,000 Services × 10 endpoints under 32 MiB:" \
	"$(kv "$RES/scale-maglev.txt" maglev_services total_bytes) B" \
	"($(kv "$RES/scale-maglev.txt" maglev_services chunks) chunks of 64 B, maglev_bench)."
if [ -s "$RES/scale-pkt.txt" ]; then
	echo
	echo "Per-packet cost at N = $(kv "$RES/scale-pkt.txt" pkt n) × $(med "$(kv "$RES/scale-pkt.txt" pkt n)" endpoints) endpoints" \
		"(bench_pkt, part 1's harness, $(kv "$RES/scale-pkt.txt" pkt runs) runs;" \
		"ns per packet with its wrapper, median (min–max)):"
	echo
	echo "| case | ns | check |"
	echo "|---|---|---|"
	grep '^pkt ' "$RES/scale-pkt.txt" | while read -r _ c _ med min max _ chk; do
		echo "| ${c#case=} | ${med#ns_median=} (${min#ns_min=}–${max#ns_max=}) | ${chk#check=} |"
	done
fi
if grep -q '^maglev_sweep' "$RES/scale-maglev.txt"; then
	echo
	echo "Maglev: one endpoint added or removed, for every N from 1 to 1,000 at the adaptive M"
	echo "(maglev_bench --sweep: endpoint N added to 1..N-1 and removed, the middle one removed"
	echo "and added back). The share of the flows of the endpoints that stayed that moved; an"
	echo "addition must move 1/N, so its figure is what moved beyond that. Bound: 1/N + 4%."
	echo
	echo "| M | N | changes | add: worst beyond 1/N | remove: worst | remove: mean |"
	echo "|---|---|---|---|---|---|"
	tab maglev_sweep '"| " (k["M"] == "" ? "all" : k["M"]) " | " k["N"] " | " k["changes"] " | " k["add_worst_extra_pct"] "% (N=" k["add_worst_n"] ") | " k["rm_worst_pct"] "% (N=" k["rm_worst_n"] ") | " k["rm_mean_pct"] "% |"'
	echo
	echo "On random address sets (maglev_tail: one random endpoint removed from each set):"
	echo
	echo "| M | N | sets | mean beyond 1/N | worst | sets over 1/N + 4% |"
	echo "|---|---|---|---|---|---|"
	tab maglev_tail '"| " k["M"] " | " k["N"] " | " k["sets"] " | " k["mean_extra_pct"] "% | " k["worst_extra_pct"] "% | " k["over_4pct_share"] " |"'
	echo
	echo "Where M changes (the only N in 1..1,000 where it does), the share of 1M random flows"
	echo "that changed backend, against the same change at the old M:"
	echo
	echo "| N | M | moved | at a fixed M |"
	echo "|---|---|---|---|"
	tab maglev_resize '"| " k["N"] " | " k["M"] " | " k["moved_pct"] "% | " k["same_m_moved_pct"] "% |"'
fi
