#!/usr/bin/python3
"""Regenerates fuzz/seeds/*.bin: raw Ethernet frames (no FCS) that reach each dispatch path of
FrameDispatcher for the VIPs FrameFuzzer.swift owns, plus a few drop paths.

Needs scapy (Debian's /usr/bin/python3 has it). The seeds are committed; run.sh does not need
scapy. Run from anywhere: /usr/bin/python3 fuzz/make_seeds.py
"""
import os
import sys

from scapy.all import (ARP, Dot1AD, Dot1Q, Ether, ICMP, IP, IPv6, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, ICMPv6EchoRequest,
                       ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, Raw, TCP, UDP, raw)
from scapy.layers.sctp import SCTP, SCTPChunkInit

# Must match FrameFuzzer.swift.
PORT_MAC = "02:00:00:00:00:01"
VIP_MAC10 = "02:00:00:00:00:0a"   # 192.0.2.10, 2001:db8::10, 203.0.113.200, 2001:db8:1::7
PEER_MAC = "02:aa:bb:cc:dd:01"
V4_VIP, V4_VIP_PORT = "192.0.2.10", "192.0.2.11"          # the latter answers with PORT_MAC
V6_VIP, V6_VIP_PORT = "2001:db8::10", "2001:db8::11"
PEER4, PEER6, PEER_LL = "192.0.2.99", "2001:db8::99", "fe80::99"


def solicited_node(addr):
    import ipaddress
    low = int(ipaddress.IPv6Address(addr)) & 0xFFFFFF
    return str(ipaddress.IPv6Address((0xFF02 << 112) | (1 << 32) | (0xFF << 24) | low))


def sn_mac(group):
    import ipaddress
    low = int(ipaddress.IPv6Address(group)) & 0xFFFFFFFF
    return "33:33:" + ":".join("%02x" % ((low >> s) & 0xFF) for s in (24, 16, 8, 0))


SN = solicited_node(V6_VIP)
SN_MAC = sn_mac(SN)

SEEDS = {
    # ARP (RFC 826)
    "arp-request": Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) /
        ARP(op=1, hwsrc=PEER_MAC, psrc=PEER4, pdst=V4_VIP),
    "arp-request-vlan": Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / Dot1Q(vlan=42) /
        ARP(op=1, hwsrc=PEER_MAC, psrc=PEER4, pdst=V4_VIP_PORT),
    "arp-request-qinq": Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / Dot1AD(vlan=7) / Dot1Q(vlan=42) /
        ARP(op=1, hwsrc=PEER_MAC, psrc=PEER4, pdst=V4_VIP),
    "arp-gratuitous": Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) /
        ARP(op=1, hwsrc=PEER_MAC, psrc=V4_VIP, pdst=V4_VIP),
    # ICMP echo (RFC 792)
    "icmp-echo": Ether(dst=VIP_MAC10, src=PEER_MAC) / IP(src=PEER4, dst=V4_VIP) /
        ICMP(type=8, id=0x1234, seq=1) / Raw(b"sluice-fuzz-seed"),
    "icmp-echo-empty": Ether(dst=PORT_MAC, src=PEER_MAC) / IP(src=PEER4, dst=V4_VIP_PORT) /
        ICMP(type=8, id=1, seq=1),
    "icmp-echo-options-vlan": Ether(dst=VIP_MAC10, src=PEER_MAC) / Dot1Q(vlan=5) /
        IP(src=PEER4, dst=V4_VIP, options=b"\x01\x01\x01\x00") / ICMP(type=8, id=7, seq=9) / Raw(b"x" * 33),
    "ipv4-fragment": Ether(dst=VIP_MAC10, src=PEER_MAC) / IP(src=PEER4, dst=V4_VIP, flags="MF", id=77) /
        ICMP(type=8, id=1, seq=1) / Raw(b"y" * 16),
    "tcp-syn": Ether(dst=VIP_MAC10, src=PEER_MAC) / IP(src=PEER4, dst=V4_VIP) /
        TCP(sport=40000, dport=443, flags="S", options=[("MSS", 1460), ("SAckOK", b"")]),
    "udp": Ether(dst=VIP_MAC10, src=PEER_MAC) / IP(src=PEER4, dst=V4_VIP) /
        UDP(sport=5353, dport=53) / Raw(b"\x00\x01\x01\x00\x00\x01"),
    "sctp-init": Ether(dst=VIP_MAC10, src=PEER_MAC) / IP(src=PEER4, dst=V4_VIP) /
        SCTP(sport=5000, dport=38412) / SCTPChunkInit(init_tag=0x11223344),
    # ICMPv6 echo (RFC 4443)
    "icmpv6-echo": Ether(dst=VIP_MAC10, src=PEER_MAC) / IPv6(src=PEER6, dst=V6_VIP) /
        ICMPv6EchoRequest(id=0x4321, seq=2, data=b"sluice-fuzz-seed"),
    "icmp-echo-extra-vip": Ether(dst=VIP_MAC10, src=PEER_MAC) / IP(src=PEER4, dst="203.0.113.200", ttl=3) /
        ICMP(type=8, id=0xffff, seq=0xffff) / Raw(b"\xff" * 7),
    "icmpv6-echo-hbh-routing": Ether(dst=PORT_MAC, src=PEER_MAC) / IPv6(src=PEER6, dst=V6_VIP_PORT) /
        IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(addresses=[]) / ICMPv6EchoRequest(id=1, seq=1),
    "ipv6-fragment": Ether(dst=VIP_MAC10, src=PEER_MAC) / IPv6(src=PEER6, dst=V6_VIP) /
        IPv6ExtHdrFragment(offset=0, m=1, id=99) / ICMPv6EchoRequest(id=1, seq=1, data=b"z" * 16),
    # Neighbor Discovery (RFC 4861)
    "ns-sllao": Ether(dst=SN_MAC, src=PEER_MAC) / IPv6(src=PEER6, dst=SN, hlim=255) /
        ICMPv6ND_NS(tgt=V6_VIP) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC),
    "ns-unicast-no-option": Ether(dst=VIP_MAC10, src=PEER_MAC) / IPv6(src=PEER_LL, dst=V6_VIP, hlim=255) /
        ICMPv6ND_NS(tgt=V6_VIP),
    "ns-dad": Ether(dst=SN_MAC, src=PEER_MAC) / IPv6(src="::", dst=SN, hlim=255) / ICMPv6ND_NS(tgt=V6_VIP),
    "ns-qinq-other-vip": Ether(dst=sn_mac(solicited_node("2001:db8:1::7")), src=PEER_MAC) / Dot1AD(vlan=9) /
        Dot1Q(vlan=10) / IPv6(src=PEER6, dst=solicited_node("2001:db8:1::7"), hlim=255) /
        ICMPv6ND_NS(tgt="2001:db8:1::7") / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC),
    "ns-vlan-linklocal": Ether(dst=sn_mac(solicited_node("fe80::10")), src=PEER_MAC) / Dot1Q(vlan=100) /
        IPv6(src=PEER_LL, dst=solicited_node("fe80::10"), hlim=255) /
        ICMPv6ND_NS(tgt="fe80::10") / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
    os.makedirs(out, exist_ok=True)
    for name, pkt in sorted(SEEDS.items()):
        data = raw(pkt)
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(data)
        print("%-26s %4d bytes  %s" % (name, len(data), pkt.summary()), file=sys.stderr)


if __name__ == "__main__":
    main()
