#!/bin/bash
# VLAN-tagged frames on the uplink (issue 9, item 9): sp_xdp on up0 (a
# veth, which never strips tags) gets UDP requests to a ClusterIP carrying
# their tags in the frame's data, one 802.1Q tag or two (802.1ad outer,
# 802.1Q inner: QinQ). The datapath must parse past the tags, NAT in place
# and hand the frame to the stack. The node's own stack knows nothing of the
# VIP: an answer from a pod means XDP did the DNAT.
#
# This kernel has no VLAN devices (CONFIG_VLAN_8021Q is not set), so the
# client writes the tagged frames itself (AF_PACKET), with VLAN id 0
# (802.1p priority tags), which the stack takes as untagged frames of the
# device; the reply comes back untagged to the client's UDP socket.
# test_bpf_vlan checks non-zero VLAN ids and the rewrite byte for byte.
. "$(dirname "$0")/lib.sh"

e2e_cases dot1q-v4 dot1q-v6 qinq-v4 qinq-v6

e2e_begin --pods 2
PORTS='[{name: dns, protocol: UDP, port: 5353}]'
{
	cat <<YAML
services:
  - name: dns
    namespace: demo
    type: ClusterIP
    clusterIPs: [10.96.0.10, fd00:96::10]
    ports:
      - {name: dns, protocol: UDP, port: 53, targetPort: 5353}
endpointSlices:
YAML
	yaml_slices demo dns dns "$PORTS" pod1 pod2
} | e2e_write_config

# The client sends one tagged UDP datagram to VIP:53 from a bound socket's
# port and waits (at most 2 s) for the answer on that socket. Arguments: the
# device, the node's MAC, VIP, the client's address, and the tag protocols
# (outermost first, "-" for none). Prints the answer, or "ERR ...".
VLAN_PY='
import socket, struct, sys, select
dev, dmac, vip, src, tags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
v6 = ":" in vip
fam = socket.AF_INET6 if v6 else socket.AF_INET
u = socket.socket(fam, socket.SOCK_DGRAM)
u.bind((src, 0))
sport = u.getsockname()[1]
payload = b"vlan-probe"
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
sa, da = socket.inet_pton(fam, src), socket.inet_pton(fam, vip)
ulen = 8 + len(payload)
if v6:
    pseudo = sa + da + struct.pack("!IxxxB", ulen, 17)
else:
    pseudo = sa + da + struct.pack("!xBH", 17, ulen)
udp = struct.pack("!HHHH", sport, 53, ulen, 0) + payload
c = csum(pseudo + udp) or 0xffff
udp = udp[:6] + struct.pack("!H", c) + udp[8:]
if v6:
    ip = struct.pack("!IHBB", 6 << 28, ulen, 17, 64) + sa + da
    etype = 0x86dd
else:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 1, 0, 64, 17, 0, sa, da)
    ip = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    etype = 0x0800
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
smac = s.getsockname()[4]
l2 = bytes.fromhex(dmac.replace(":", "")) + smac
for t in ([] if tags == "-" else tags.split(",")):
    l2 += struct.pack("!HH", int(t, 16), 0)  # VLAN id 0, priority 0
l2 += struct.pack("!H", etype)
s.send(l2 + ip + udp)
r, _, _ = select.select([u], [], [], 2.0)
print(u.recv(512).decode(errors="replace").strip() if r else "ERR no answer in 2 s")
'

e2e_start_daemon --iface up0 || e2e_abort "daemon did not start"
NODE_MAC=$(ip -n "$E2E_NODE" -br link show up0 | awk '{print $3}')

# vlan_case CASE VIP SRC TAGS: four datagrams, each answered by a pod.
vlan_case() {
	local i out bad="" seen=""
	for i in 1 2 3 4; do
		out=$(ip netns exec "$CL_CLIENT" "$CL_PY" -c "$VLAN_PY" br0 "$NODE_MAC" "$2" "$3" "$4" 2>&1)
		case $out in
		pod[12]\ *) seen+="${out%% *} " ;;
		*) bad="datagram $i: $out" && break ;;
		esac
	done
	if [ -z "$bad" ]; then pass "$1"; else fail "$1" "$bad (answers so far: ${seen:-none})"; fi
}
vlan_case dot1q-v4 10.96.0.10 10.10.0.2 8100
vlan_case dot1q-v6 fd00:96::10 fd00:10::2 8100
vlan_case qinq-v4 10.96.0.10 10.10.0.2 88a8,8100
vlan_case qinq-v6 fd00:96::10 fd00:10::2 88a8,8100

