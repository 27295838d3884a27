#!/bin/bash
# Rows 13 and 14 of DESIGN.md with real sockets: ICMP errors and IP
# fragments of NATed flows, through the kernel's own PMTU discovery,
# fragmentation and reassembly.
#
#   bulk  LoadBalancer 10.10.0.150 fd00:10::150, TCP 80 -> 7070 (a sink
#         that answers with the byte count), only endpoint pod1, whose
#         host-side veth has MTU 1400 while everything else has 1500: the
#         node must send "fragmentation needed" / "packet too big" to the
#         client about a packet it DNATed, and the client must match it to
#         its socket (the quote must show the LB address), or a large upload
#         stalls forever (a PMTU black hole).
#   big   LoadBalancer 10.10.0.151 fd00:10::151, UDP 53 -> 7071 (answers
#         every datagram with 3,000 bytes), only endpoint pod2: the answer
#         leaves pod2 in fragments, all of which must come from the LB
#         address for the client to reassemble it; and a 3,000-byte request
#         arrives in fragments, all of which must reach pod2.
#   gone  LoadBalancer 10.10.0.152 fd00:10::152, UDP 53 -> 7072 where
#         nothing listens on pod2: pod2's port unreachable must reach the
#         client's socket as ECONNREFUSED (the quote shows the LB address).
#   kube  ClusterIP 10.96.0.60 fd00:96::60, TCP 443 -> 8080 whose endpoint
#         is the node's own address (a host-network server, as the API
#         server behind the `kubernetes` Service on a control-plane node):
#         a host process must get its answer (it used to be SNATed to the
#         hairpin address and sent out of the uplink).
# Each transfer is bounded in time: a black hole is a failure, not a hang.
. "$(dirname "$0")/lib.sh"

e2e_cases \
	pmtu-ipv4-tcp-upload pmtu-ipv6-tcp-upload pmtu-icmp-translated \
	udp-large-reply-ipv4 udp-large-reply-ipv6 udp-large-request-ipv4 udp-large-request-ipv6 \
	udp-fragments-translated \
	pod-port-unreachable-ipv4 pod-port-unreachable-ipv6 \
	host-to-own-address-endpoint-ipv4 host-to-own-address-endpoint-ipv6

e2e_begin --pods 2
for v in 10.10.0.150 fd00:10::150 10.10.0.151 fd00:10::151 10.10.0.152 fd00:10::152; do
	cl_client_route "$v" || e2e_abort "client route to $v"
done

# The servers of this test, in pod1 (the sink) and pod2 (the big answers).
INTEGRITY_SERVER_PY='
import socket, sys, threading

def bind(kind, port):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    return s

def sink(c):
    n = 0
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            n += len(d)
        c.sendall(b"%d\n" % n)

def tcp_sink(port):
    s = bind(socket.SOCK_STREAM, port)
    s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=sink, args=(c,), daemon=True).start()

def udp_big(port, pod):
    s = bind(socket.SOCK_DGRAM, port)
    while True:
        d, a = s.recvfrom(65535)
        head = b"%s %d " % (pod.encode(), len(d))
        s.sendto(head + b"x" * (3000 - len(head)), a)

pod, what = sys.argv[1], sys.argv[2]
print("%s: %s" % (pod, what), flush=True)
if what == "sink":
    tcp_sink(7070)
else:
    udp_big(7071, pod)
'

# The client's side: an upload that must complete, and big datagrams.
INTEGRITY_CLIENT_PY='
import errno, socket, sys, time

def fam(h):
    return socket.AF_INET6 if ":" in h else socket.AF_INET

cmd, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.monotonic()
try:
    if cmd == "upload":
        s = socket.socket(fam(host), socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect((host, port))
        s.sendall(b"u" * n)
        s.shutdown(socket.SHUT_WR)
        print("OK", s.recv(100).decode().strip(), "%dms" % ((time.monotonic() - t0) * 1000))
    else:
        s = socket.socket(fam(host), socket.SOCK_DGRAM)
        s.settimeout(3)
        s.connect((host, port))
        s.send(b"q" * n)
        d = s.recv(65535)
        w = d.split()
        print("OK", len(d), w[0].decode(), w[1].decode())
except OSError as e:
    name = "TIMEOUT" if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e))
    print("ERR", name, "%dms" % ((time.monotonic() - t0) * 1000))
'

cl_bg "${CL_POD_NS[pod1]}" "$CL_TMP/pod1-sink.log" "$CL_PY" -c "$INTEGRITY_SERVER_PY" pod1 sink
cl_bg "${CL_POD_NS[pod2]}" "$CL_TMP/pod2-big.log" "$CL_PY" -c "$INTEGRITY_SERVER_PY" pod2 big
cl_wait_listener "${CL_POD_NS[pod1]}" tcp 7070 || e2e_abort "pod1's sink does not listen"
cl_wait_listener "${CL_POD_NS[pod2]}" udp 7071 || e2e_abort "pod2's UDP server does not listen"
# A host-network server on the node itself (answers "node <peer>" on 8080).
cl_bg "$E2E_NODE" "$CL_TMP/node-server.log" "$CL_PY" -c "$CL_SERVER_PY" node
cl_wait_listener "$E2E_NODE" tcp 8080 || e2e_abort "the node's own server does not listen"
# The link behind the node towards pod1 is smaller than the client's.
cl_run ip -n "$E2E_NODE" link set "${CL_POD_HOSTIF[pod1]}" mtu 1400 || e2e_abort "set the MTU"

{
	echo "services:"
	yaml_service demo bulk LoadBalancer "[10.96.0.50, fd00:96::50]" "[10.10.0.150, fd00:10::150]" \
		"{name: sink, protocol: TCP, port: 80, targetPort: 7070, nodePort: 30070}"
	yaml_service demo big LoadBalancer "[10.96.0.51, fd00:96::51]" "[10.10.0.151, fd00:10::151]" \
		"{name: big, protocol: UDP, port: 53, targetPort: 7071, nodePort: 30071}"
	yaml_service demo gone LoadBalancer "[10.96.0.52, fd00:96::52]" "[10.10.0.152, fd00:10::152]" \
		"{name: gone, protocol: UDP, port: 53, targetPort: 7072, nodePort: 30072}"
	yaml_service demo kube ClusterIP "[10.96.0.60, fd00:96::60]" "" \
		"{name: https, protocol: TCP, port: 443, targetPort: 8080}"
	echo "endpointSlices:"
	yaml_addr_slice demo kube kube-v4 4 '[{name: https, protocol: TCP, port: 8080}]' 10.10.0.1
	yaml_addr_slice demo kube kube-v6 6 '[{name: https, protocol: TCP, port: 8080}]' fd00:10::1
	yaml_slices demo bulk bulk '[{name: sink, protocol: TCP, port: 7070}]' pod1
	yaml_slices demo big big '[{name: big, protocol: UDP, port: 7071}]' pod2
	yaml_slices demo gone gone '[{name: gone, protocol: UDP, port: 7072}]' pod2
} | e2e_write_config
e2e_start_daemon || e2e_abort "svcplane did not become ready"

client() { in_client "$CL_PY" -c "$INTEGRITY_CLIENT_PY" "$@"; }
# stat NAME: a datapath counter (sum over CPUs), from `svcplane stats --json`.
stat() {
	sp "$E2E_NODE" stats --json 2>/dev/null |
		"$CL_PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["counters"]["'"$1"'"])' 2>/dev/null ||
		echo 0
}

# Row 13: a 2 MB upload through a path whose MTU (1400) is below the
# client's (1500). It completes only if the node's ICMP errors reach the
# client's socket translated.
icmp0=$(stat icmp_translated)
for fam in ipv4 ipv6; do
	addr=10.10.0.150
	[ $fam = ipv6 ] && addr=fd00:10::150
	out=$(client upload "$addr" 80 2000000)
	if [[ $out == "OK 2000000 "* ]]; then
		pass "pmtu-$fam-tcp-upload"
	else
		fail "pmtu-$fam-tcp-upload" "2 MB upload to $addr:80: ${out:-no output}"
	fi
done
icmp1=$(stat icmp_translated)
check pmtu-icmp-translated "icmp_translated did not grow ($icmp0 -> $icmp1)" \
	test "$icmp1" -gt "$icmp0"

# Row 14: a 3,000-byte answer leaves pod2 in fragments; a 3,000-byte
# request reaches it in fragments. The answer names the pod and the size
# of the request it got.
frag0=$(stat frag_later_natted)
for fam in ipv4 ipv6; do
	addr=10.10.0.151
	[ $fam = ipv6 ] && addr=fd00:10::151
	out=$(client udp "$addr" 53 20)
	if [[ $out == "OK 3000 pod2 20" ]]; then
		pass "udp-large-reply-$fam"
	else
		fail "udp-large-reply-$fam" "expected 'OK 3000 pod2 20' from $addr:53, got: ${out:-nothing}"
	fi
	out=$(client udp "$addr" 53 3000)
	if [[ $out == "OK 3000 pod2 3000" ]]; then
		pass "udp-large-request-$fam"
	else
		fail "udp-large-request-$fam" "expected 'OK 3000 pod2 3000' from $addr:53, got: ${out:-nothing}"
	fi
done
frag1=$(stat frag_later_natted)
check udp-fragments-translated "frag_later_natted did not grow ($frag0 -> $frag1)" \
	test "$frag1" -gt "$frag0"

# Row 13: nothing listens behind "gone": pod2's ICMP port unreachable must
# reach the client's socket (ECONNREFUSED), not be ignored (a timeout).
for fam in ipv4 ipv6; do
	addr=10.10.0.152
	[ $fam = ipv6 ] && addr=fd00:10::152
	e2e_refused "pod-port-unreachable-$fam" udp "$CL_CLIENT" "$addr" 53
done

# Issue 9 item 4: a host process to a Service whose endpoint is this node.
for fam in ipv4 ipv6; do
	url=http://10.96.0.60:443/
	[ $fam = ipv6 ] && url='http://[fd00:96::60]:443/'
	out=$(in_node curl -s --max-time 5 "$url" 2>&1)
	if [[ $out == "node "* ]]; then
		pass "host-to-own-address-endpoint-$fam"
	else
		fail "host-to-own-address-endpoint-$fam" "GET $url from the node: ${out:-no answer}"
	fi
done
