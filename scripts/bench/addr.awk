# Addressing shared by the benchmark generators (gen-iptables.sh, gen-nft.sh,
# gen-config.sh). Service i (0-based) of N, endpoint j of E.
function ip4(n) { # 32-bit integer -> dotted quad
	return sprintf("%d.%d.%d.%d", int(n / 16777216) % 256, int(n / 65536) % 256,
		int(n / 256) % 256, n % 256)
}
function vip(i) { return ip4(10 * 16777216 + 96 * 65536 + i + 1) }
function ep(i, j) { # endpoint j of Service i; Service 0's are the real pods
	if (i == 0)
		return "10.244.0." (11 + j)
	return ip4(172 * 16777216 + 16 * 65536 + i * E + j)
}
# Endpoints of Service i, after --change for Service 0 (last one replaced).
function ep_now(i, j) {
	if (CHANGE && i == 0 && j == E - 1)
		return "10.244.0." (11 + E)
	return ep(i, j)
}
# Stable 16-character hashes standing in for kube-proxy's chain name hashes.
function h16(s, i, j) { return sprintf("%s%07d%08d", s, i, j) }
# Order Services are written in: 1..N-1, then 0 (the one under test) last.
function svc_at(k) { return (k + 1) % N }
# Ports: every Service has port 80 ("tcp", TCP); Service 0, the one under
# test, has one port 80 per protocol of PROTOS ("tcp", "udp" or "tcp,udp"),
# named after the protocol, so one rule set serves the TCP and UDP benchmarks.
function nports(i) { return i == 0 ? NPROTO : 1 }
function port_proto(i, k) { return i == 0 ? PROTO[k] : "tcp" }
function init_protos() { NPROTO = split(PROTOS, PROTO, ",") }
